// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// A fee-on-transfer ERC-20 for the invoice tests: every transfer keeps
/// `feeBps` of the value for `collector`, so the recipient's Transfer log
/// shows what arrived, less than what was sent.
contract TestFeeToken {
    mapping(address => uint256) public balanceOf;
    address public immutable collector;
    uint256 public immutable feeBps;

    event Transfer(address indexed from, address indexed to, uint256 value);

    constructor(address collector_, uint256 feeBps_) {
        collector = collector_;
        feeBps = feeBps_;
    }

    function mint(address to, uint256 value) external {
        balanceOf[to] += value;
        emit Transfer(address(0), to, value);
    }

    function transfer(address to, uint256 value) external returns (bool) {
        require(balanceOf[msg.sender] >= value, "balance");
        uint256 fee = (value * feeBps) / 10000;
        balanceOf[msg.sender] -= value;
        balanceOf[to] += value - fee;
        balanceOf[collector] += fee;
        emit Transfer(msg.sender, collector, fee);
        emit Transfer(msg.sender, to, value - fee);
        return true;
    }
}
