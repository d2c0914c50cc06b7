// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title A minimal ERC-721 for tests: mint and transfer, with the standard Transfer event.
/// @notice Enough for holder snapshots (settlement/distributions): no approvals,
/// no safe transfers, no metadata.
contract TestNFT {
    mapping(uint256 => address) public ownerOf;
    mapping(address => uint256) public balanceOf;

    event Transfer(address indexed from, address indexed to, uint256 indexed tokenId);

    function mint(address to, uint256 tokenId) external {
        require(to != address(0) && ownerOf[tokenId] == address(0), "bad mint");
        ownerOf[tokenId] = to;
        balanceOf[to] += 1;
        emit Transfer(address(0), to, tokenId);
    }

    function transferFrom(address from, address to, uint256 tokenId) external {
        require(ownerOf[tokenId] == from && msg.sender == from && to != address(0), "not owner");
        ownerOf[tokenId] = to;
        balanceOf[from] -= 1;
        balanceOf[to] += 1;
        emit Transfer(from, to, tokenId);
    }

    function burn(uint256 tokenId) external {
        address from = ownerOf[tokenId];
        require(msg.sender == from, "not owner");
        delete ownerOf[tokenId];
        balanceOf[from] -= 1;
        emit Transfer(from, address(0), tokenId);
    }
}
