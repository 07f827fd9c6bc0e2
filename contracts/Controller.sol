// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// A stand-in for Livepeer's Controller with the same read function: a registry of contract
/// addresses keyed by keccak256 of the contract's name. As on Arbitrum One, an unknown name
/// gives the zero address rather than a revert. `setReverting` makes every lookup revert, so
/// that tests can check how a reverting call is reported.
contract Controller {
    mapping(bytes32 => address) private registry;
    bool private reverting;

    function setContractInfo(bytes32 id, address contractAddress) external {
        registry[id] = contractAddress;
    }

    function setReverting(bool value) external {
        reverting = value;
    }

    function getContract(bytes32 id) external view returns (address) {
        require(!reverting, "Controller: lookups disabled");
        return registry[id];
    }
}
