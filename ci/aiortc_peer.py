"""An independent WebRTC peer for lvt's interop tests: aiortc (PyPI), its own ICE, DTLS, SRTP,
RTP and H.264 (PyAV's libx264 and decoder), none of it shared with lvt.

  client --gateway URL [--seconds N]
      WHIP-publishes a moving 320x240 test picture (H.264 only) to URL's
      /live/video-to-video/STREAM/whip, plays the Livepeer-Playback-URL over WHEP, and prints
      one JSON line: the WHIP and WHEP statuses, the headers seen, frames decoded and their size.

  serve [--port N]
      A WHIP/WHEP server in go-livepeer's route shape for lvt's client: POST
      /live/video-to-video/STREAM/whip answers 201 with Location and Livepeer-Playback-URL
      (.../STREAM-out/whep); the WHEP route plays the ingest back (decoded and re-encoded by
      aiortc's MediaRelay and H.264 encoder), 404 until it exists; update answers 200, status
      404. Prints "serving http://127.0.0.1:PORT" and runs until stdin closes.

Run through ci/aiortc, which keeps the venv.
"""

import argparse
import asyncio
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription, VideoStreamTrack
from av import VideoFrame

WIDTH, HEIGHT = 320, 240


class Pattern(VideoStreamTrack):
    """A picture that changes every frame (a sweeping gradient), so the encoder sends real data."""

    def __init__(self):
        super().__init__()
        self.count = 0

    async def recv(self):
        pts, time_base = await self.next_timestamp()
        n = self.count
        self.count += 1
        frame = VideoFrame(width=WIDTH, height=HEIGHT, format="yuv420p")
        row = bytes(16 + (x + 4 * n) % 220 for x in range(WIDTH))
        frame.planes[0].update(row * HEIGHT)
        frame.planes[1].update(bytes([128]) * (WIDTH // 2 * HEIGHT // 2))
        frame.planes[2].update(bytes([128]) * (WIDTH // 2 * HEIGHT // 2))
        frame.pts = pts
        frame.time_base = time_base
        return frame


def post_sdp(url, sdp):
    """POSTs an SDP offer; returns (status, headers, body)."""
    request = urllib.request.Request(
        url, data=sdp.encode(), method="POST", headers={"Content-Type": "application/sdp"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read().decode()


def h264_only(transceiver):
    codecs = RTCRtpSender.getCapabilities("video").codecs
    transceiver.setCodecPreferences([c for c in codecs if c.mimeType == "video/H264"])


async def client(args):
    loop = asyncio.get_running_loop()
    result = {}
    stream = "aiortc%d" % (int(time.time() * 1000) % 1000000)
    whip = "%s/live/video-to-video/%s/whip?%s" % (
        args.gateway.rstrip("/"),
        stream,
        urllib.parse.urlencode({"pipeline": "noop", "streamId": stream}),
    )

    publisher = RTCPeerConnection()
    sending = publisher.addTransceiver(Pattern(), direction="sendonly")
    h264_only(sending)
    await publisher.setLocalDescription(await publisher.createOffer())
    status, headers, body = await loop.run_in_executor(
        None, post_sdp, whip, publisher.localDescription.sdp
    )
    result["whip_status"] = status
    result["location"] = headers.get("Location")
    result["playback_url"] = headers.get("Livepeer-Playback-URL")
    if status != 201:
        result["whip_body"] = body
        print(json.dumps(result))
        return 1
    await publisher.setRemoteDescription(RTCSessionDescription(body, "answer"))

    decoded = {"frames": 0, "width": None, "height": None, "first_at": None}
    start = time.monotonic()

    async def consume(track):
        while True:
            try:
                frame = await track.recv()
            except Exception:
                return
            decoded["frames"] += 1
            decoded["width"], decoded["height"] = frame.width, frame.height
            if decoded["first_at"] is None:
                decoded["first_at"] = time.monotonic() - start

    player = RTCPeerConnection()
    receiving = player.addTransceiver("video", direction="recvonly")
    h264_only(receiving)
    player.on("track", lambda track: asyncio.ensure_future(consume(track)))
    await player.setLocalDescription(await player.createOffer())
    whep_status = None
    for _ in range(20):  # 404 until the output exists, as go-livepeer answers
        whep_status, _, answer = await loop.run_in_executor(
            None, post_sdp, result["playback_url"], player.localDescription.sdp
        )
        if whep_status != 404:
            break
        await asyncio.sleep(0.5)
    result["whep_status"] = whep_status
    if whep_status == 201:
        await player.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        await asyncio.sleep(args.seconds)
    result["frames_decoded"] = decoded["frames"]
    result["width"], result["height"] = decoded["width"], decoded["height"]
    result["first_frame_s"] = decoded["first_at"]
    await player.close()
    await publisher.close()
    print(json.dumps(result))
    return 0


async def serve(args):
    from aiortc.contrib.media import MediaRelay

    relay = MediaRelay()
    tracks = {}  # stream name -> the ingest's video track
    peers = set()

    async def answer(offer_sdp, setup):
        pc = RTCPeerConnection()
        peers.add(pc)
        setup(pc)
        await pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
        for transceiver in pc.getTransceivers():
            if transceiver.kind == "video":
                h264_only(transceiver)
        await pc.setLocalDescription(await pc.createAnswer())
        return pc.localDescription.sdp

    async def handle(reader, writer):
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            status, extra, payload = await route(method, path.split("?")[0], headers, body.decode())
        except Exception as error:  # a bad request gets a 400, the server goes on
            status, extra, payload = 400, {}, "%s\n" % error
        reason = {200: "OK", 201: "Created", 400: "Bad Request", 404: "Not Found"}.get(status, "")
        data = payload.encode()
        response = "HTTP/1.1 %d %s\r\nContent-Length: %d\r\nConnection: close\r\n" % (
            status,
            reason,
            len(data),
        )
        for name, value in extra.items():
            response += "%s: %s\r\n" % (name, value)
        writer.write(response.encode() + b"\r\n" + data)
        await writer.drain()
        writer.close()

    async def route(method, path, headers, body):
        parts = path.strip("/").split("/")
        if len(parts) != 4 or parts[:2] != ["live", "video-to-video"] or method != "POST":
            return 404, {}, "Stream not found\n"
        name, verb = parts[2], parts[3]
        host = headers.get("host", "127.0.0.1")
        if verb == "whip":

            def setup(pc):
                @pc.on("track")
                def on_track(track):
                    if track.kind == "video":
                        tracks[name] = track

            sdp = await answer(body, setup)
            return 201, {
                "Content-Type": "application/sdp",
                "Location": "http://%s%s/1" % (host, path),
                "Livepeer-Playback-URL": "http://%s/live/video-to-video/%s-out/whep" % (host, name),
            }, sdp
        if verb == "whep" and name.endswith("-out"):
            track = tracks.get(name[: -len("-out")])
            if track is None:
                return 404, {}, "Stream not found\n"
            sdp = await answer(body, lambda pc: pc.addTrack(relay.subscribe(track)))
            return 201, {"Content-Type": "application/sdp"}, sdp
        if verb == "update":
            return 200, {}, ""
        return 404, {}, "Stream not found\n"

    server = await asyncio.start_server(handle, "127.0.0.1", args.port)
    port = server.sockets[0].getsockname()[1]
    print("serving http://127.0.0.1:%d" % port, flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until stdin closes
    server.close()
    for pc in list(peers):
        await pc.close()
    return 0


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="mode", required=True)
    c = sub.add_parser("client")
    c.add_argument("--gateway", required=True)
    c.add_argument("--seconds", type=float, default=4.0)
    s = sub.add_parser("serve")
    s.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    sys.exit(asyncio.run(client(args) if args.mode == "client" else serve(args)))


if __name__ == "__main__":
    main()
