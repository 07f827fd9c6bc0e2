// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// A stand-in for Livepeer's BondingManager exposing the two functions a gateway uses to walk
/// the transcoder pool. The real pool is a sorted linked list; here the test writes the links
/// itself, which also lets it build a broken list (a cycle) that the real contract never has.
contract BondingManager {
    address private first;
    mapping(address => address) private next;

    /// Makes `pool` the whole pool, in order; the last member links to the zero address.
    function setPool(address[] calldata pool) external {
        first = pool.length == 0 ? address(0) : pool[0];
        for (uint256 i = 0; i < pool.length; i++) {
            next[pool[i]] = i + 1 < pool.length ? pool[i + 1] : address(0);
        }
    }

    /// Overwrites one link, for tests of a corrupt pool.
    function setNext(address transcoder, address nextTranscoder) external {
        next[transcoder] = nextTranscoder;
    }

    function getFirstTranscoderInPool() external view returns (address) {
        return first;
    }

    function getNextTranscoderInPool(address transcoder) external view returns (address) {
        return next[transcoder];
    }
}
