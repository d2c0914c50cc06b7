// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

// Payout recipients that misbehave, for the PayoutBatcher tests only.

/// Refuses every native payment.
contract RevertingReceiver {
    receive() external payable {
        revert("RevertingReceiver: no thanks");
    }
}

/// Uses up whatever gas it is given.
contract GasBurningReceiver {
    uint256 public spins;

    receive() external payable {
        while (true) {
            spins += 1;
        }
    }
}

/// Tries to run a second batch from inside a payout and records how the
/// batcher answered, so a test can see the re-entrancy guard at work.
contract ReentrantReceiver {
    address public target;
    bytes public payload;
    bool public attempted;
    bool public innerSucceeded;
    bytes public innerReturn;

    function arm(address target_, bytes calldata payload_) external {
        target = target_;
        payload = payload_;
    }

    receive() external payable {
        (bool ok, bytes memory ret) = target.call(payload);
        attempted = true;
        innerSucceeded = ok;
        innerReturn = ret;
    }
}

/// Needs more than the 2300 stipend (a first storage write) but well under
/// the batcher's default allowance: an honest recipient a starved call would fail.
contract CountingReceiver {
    uint256 public received;

    receive() external payable {
        received += msg.value;
    }
}
