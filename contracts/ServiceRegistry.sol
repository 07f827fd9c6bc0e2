// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// A stand-in for Livepeer's ServiceRegistry. The real `setServiceURI(string)` registers the
/// caller's own URI; `setServiceURIFor` lets the test register any address without holding
/// its key. `getServiceURI` is the real read function.
contract ServiceRegistry {
    mapping(address => string) private uris;

    function setServiceURI(string calldata serviceURI) external {
        uris[msg.sender] = serviceURI;
    }

    function setServiceURIFor(address serviceProvider, string calldata serviceURI) external {
        uris[serviceProvider] = serviceURI;
    }

    function getServiceURI(address serviceProvider) external view returns (string memory) {
        return uris[serviceProvider];
    }
}
