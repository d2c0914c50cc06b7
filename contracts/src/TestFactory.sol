// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title A round deployed at run time by TestRoundFactory (tests, bench).
/// @notice It emits in its constructor, so its first event is in the
/// block (and the transaction) that creates it, before the factory
/// announces it.
contract TestRound {
    event Opened(uint256 indexed number);
    event Ticket(address indexed buyer, uint256 amount);

    uint256 public immutable number;

    constructor(uint256 number_) {
        number = number_;
        emit Opened(number_);
    }

    function buy(uint256 amount) external {
        emit Ticket(msg.sender, amount);
    }

    /// @notice `n` Ticket events in one transaction (fills blocks for the bench).
    function buyMany(uint256 n) external {
        for (uint256 i = 0; i < n; i++) {
            emit Ticket(msg.sender, i + 1);
        }
    }
}

/// @title A factory announcing each child with RoundCreated(round, number).
contract TestRoundFactory {
    event RoundCreated(address indexed round, uint256 indexed number);

    uint256 public rounds;

    function create() public returns (TestRound r) {
        rounds += 1;
        r = new TestRound(rounds);
        emit RoundCreated(address(r), rounds);
    }

    /// @notice Creates a round and buys `n` tickets in it: the child emits
    /// in the transaction that creates it.
    function createAndBuy(uint256 n) external returns (TestRound r) {
        r = create();
        r.buyMany(n);
    }
}

/// @title Moves native coin through internal calls (the trace tests).
contract TestRelay {
    function forward(address payable to) external payable {
        (bool ok, ) = to.call{value: msg.value}("");
        require(ok, "forward failed");
    }

    /// @notice Pays `to`, then reverts: the inner transfer must not count.
    function forwardAndRevert(address payable to) external payable {
        (bool ok, ) = to.call{value: msg.value}("");
        require(ok, "forward failed");
        revert("reverted on purpose");
    }
}

contract TestPayer {
    receive() external payable {}

    /// @notice Pays `amount` to `to` through `relay` (a call two levels deep),
    /// and tries `failed` more through a call that reverts (caught).
    function payVia(TestRelay relay, address payable to, uint256 amount, uint256 failed) external payable {
        relay.forward{value: amount}(to);
        if (failed > 0) {
            try relay.forwardAndRevert{value: failed}(to) {} catch {}
        }
    }
}
