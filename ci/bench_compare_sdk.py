"""The Python SDK's side of ci/bench-compare: N concurrent live video-to-video sessions against
one orchestrator through PyPI's `livepeer-gateway`, each publishing 512x512 frames at 30 fps with
the SDK's own publisher (it encodes them with libx264 through PyAV) and reading the output
channel's bytes, then one JSON line with the process's CPU per stream-second.

Run by ci/bench-compare inside its venv; not a test. Usage:
    python bench_compare_sdk.py ORCH_URL SESSIONS SECONDS
"""

import asyncio
import json
import resource
import sys
import time

import av
import numpy as np
from livepeer_gateway import MediaPublishConfig, StartJobRequest, VideoOutputConfig, start_lv2v

WIDTH = 512
HEIGHT = 512
FPS = 30


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def frames() -> list:
    """A few distinct frames (a moving gray ramp), reused so that making them costs nothing."""
    out = []
    ramp = np.tile(np.arange(WIDTH, dtype=np.uint8), (HEIGHT, 1))
    for shift in range(0, 256, 32):
        rgb = np.stack([np.roll(ramp, shift, axis=1)] * 3, axis=-1)
        out.append(av.VideoFrame.from_ndarray(rgb, format="rgb24"))
    return out


async def session(orch: str, seconds: float, pictures: list, result: dict) -> None:
    job = start_lv2v(orch, StartJobRequest(model_id="noop"), start_payments=False, timeout=10.0)
    media = job.start_media(MediaPublishConfig(tracks=[VideoOutputConfig(fps=FPS)]))
    received = {"bytes": 0}

    async def read() -> None:
        output = job.media_output()
        async for chunk in output.bytes():
            received["bytes"] += len(chunk)

    reader = asyncio.create_task(read())
    start = time.monotonic()
    index = 0
    try:
        while True:
            due = start + index / FPS
            if due - start >= seconds:
                break
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            # No PTS: the SDK stamps each frame with its wall clock, and the frames are shared
            # between sessions, so they are never changed.
            await media.write_frame(pictures[index % len(pictures)])
            index += 1
    finally:
        result["frames_sent"] = index
        result["output_bytes"] = received["bytes"]
        reader.cancel()
        try:
            await media.close()
        except Exception as error:  # the close of a failed session says nothing new
            result.setdefault("error", repr(error))
        await job.close()


async def main() -> None:
    orch, sessions, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    pictures = frames()
    results = [dict() for _ in range(sessions)]
    cpu_before = cpu_seconds()
    wall_before = time.monotonic()
    outcomes = await asyncio.gather(
        *(session(orch, seconds, pictures, result) for result in results),
        return_exceptions=True,
    )
    wall = time.monotonic() - wall_before
    cpu = cpu_seconds() - cpu_before
    errors = [repr(outcome) for outcome in outcomes if isinstance(outcome, BaseException)]
    delivered = sum(1 for result in results if result.get("output_bytes", 0) > 0)
    print(
        json.dumps(
            {
                "sessions": sessions,
                "seconds": seconds,
                "wall_s": wall,
                "cpu_s": cpu,
                "cpu_us_per_stream_second": cpu * 1e6 / (sessions * seconds),
                "delivered": delivered,
                "frames_sent": [result.get("frames_sent", 0) for result in results],
                "errors": errors,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    asyncio.run(main())
