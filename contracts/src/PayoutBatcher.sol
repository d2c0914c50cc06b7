// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";

/// @title Exactly-once batch payouts authorised by an EIP-712 signature.
/// @notice The daemon signs a batch (id, asset, funding source, recipients,
/// amounts, expiry) with an authorised signer key; anyone holding that
/// signature may submit it. The signature fixes every effect of the batch,
/// so the submitter only chooses when and with how much gas: a relayer that
/// front-runs the daemon's own transaction pays exactly the same people.
/// A batch id is consumed the moment its checks pass and can never run again,
/// even when some native recipients fail.
///
/// Funding: native coin always comes from this contract's balance (fund it by
/// plain transfer). ERC-20 comes either from this contract's balance
/// (`source` 0) or from `treasury` via transferFrom (`source` 1, the treasury
/// must have approved this contract); both are part of the signed struct.
///
/// Failures: a native recipient that reverts or runs out of its gas allowance
/// gets `PayoutFailed` and its amount stays here (counted in
/// `failedNativeTotal`) for the owner to sweep or re-pay; the rest of the
/// batch goes on. An ERC-20 transfer that fails reverts the whole batch (the
/// id stays unused): for a token that means the batch itself is wrong
/// (balance, allowance, a blocked address), not that one recipient is odd.
///
/// Signatures: OpenZeppelin's audited EIP712 (domain, typed-data digest,
/// EIP-5267 `eip712Domain`) and ECDSA (65-byte signatures, low s only).
/// Compiled for the `paris` EVM with a storage reentrancy guard, not
/// transient storage: see the README's chain notes for why.
contract PayoutBatcher is EIP712 {
    uint8 public constant SOURCE_CONTRACT = 0;
    uint8 public constant SOURCE_TREASURY = 1;

    string public constant NAME = "ChainsettlePayoutBatcher";
    string public constant VERSION = "1";
    bytes32 public constant BATCH_TYPEHASH = keccak256(
        "Batch(bytes32 batchId,address asset,uint8 source,address treasury,address[] recipients,uint256[] amounts,uint256 expiry)"
    );

    /// Gas kept back at each native send on top of the recipient's allowance:
    /// covers the CALL's own cost (cold account 2600 + value 9000 + new
    /// account 25000) so that the 63/64 rule can never starve a recipient.
    uint256 public constant CALL_RESERVE = 40_000;
    uint256 public constant MAX_NATIVE_GAS = 1_000_000;

    /// The signed struct; its field order is the EIP-712 type's.
    struct Batch {
        bytes32 batchId;
        address asset; // address(0): the chain's native coin
        uint8 source; // SOURCE_CONTRACT or SOURCE_TREASURY
        address treasury; // the transferFrom owner when source is SOURCE_TREASURY, else address(0)
        address[] recipients;
        uint256[] amounts;
        uint256 expiry; // unix seconds; the batch is void once block.timestamp exceeds it
    }

    address public owner;
    bool public paused;
    address public pendingOwner;
    /// Gas each native recipient may use (plus the 2300 stipend a value call adds).
    uint256 public nativeGasLimit;
    /// Native coin left here by failed payouts, cumulative (never decreases).
    uint256 public failedNativeTotal;
    mapping(address => bool) public isSigner;
    mapping(bytes32 => bool) public executed;
    uint256 private locked = 1; // 2 while executing (a storage guard: see the contract's notes)

    event PayoutSent(bytes32 indexed batchId, uint256 index, address indexed recipient, address asset, uint256 amount);
    event PayoutFailed(bytes32 indexed batchId, uint256 index, address indexed recipient, address asset, uint256 amount);
    event BatchExecuted(
        bytes32 indexed batchId,
        address indexed asset,
        address indexed signer,
        uint256 count,
        uint256 total,
        uint256 failedCount,
        uint256 failedAmount
    );
    event Funded(address indexed from, uint256 amount);
    event SignerSet(address indexed signer, bool allowed);
    event NativeGasLimitSet(uint256 gasLimit);
    event Paused(address indexed by);
    event Unpaused(address indexed by);
    event OwnershipTransferStarted(address indexed previousOwner, address indexed newOwner);
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);
    event Swept(address indexed asset, address indexed to, uint256 amount);

    error NotOwner(address caller);
    error NotPendingOwner(address caller);
    error Reentrancy();
    error ContractPaused();
    error BatchAlreadyExecuted(bytes32 batchId);
    error BatchExpired(bytes32 batchId, uint256 expiry);
    error EmptyBatch();
    error LengthMismatch(uint256 recipients, uint256 amounts);
    error BadFundingSource(uint8 source, address treasury);
    error InvalidSignature();
    error UnauthorizedSigner(address signer);
    error BadRecipient(uint256 index, address recipient);
    error ZeroAmount(uint256 index);
    error InsufficientBalance(uint256 available, uint256 required);
    error InsufficientGas(uint256 index);
    error NotAContract(address asset);
    error TokenTransferFailed(uint256 index, address recipient, uint256 amount);
    error ZeroAddress();
    error GasLimitTooHigh(uint256 gasLimit);
    error SweepFailed();

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        _;
    }

    modifier nonReentrant() {
        if (locked == 2) revert Reentrancy();
        locked = 2;
        _;
        locked = 1;
    }

    constructor(address owner_, address signer_) EIP712(NAME, VERSION) {
        if (owner_ == address(0) || signer_ == address(0)) revert ZeroAddress();
        owner = owner_;
        isSigner[signer_] = true;
        nativeGasLimit = 30_000;
        emit OwnershipTransferred(address(0), owner_);
        emit SignerSet(signer_, true);
        emit NativeGasLimitSet(30_000);
    }

    receive() external payable {
        emit Funded(msg.sender, msg.value);
    }

    // ---------------------------------------------------------------- payouts

    function executeBatch(Batch calldata batch, bytes calldata signature) external nonReentrant {
        if (paused) revert ContractPaused();
        bytes32 batchId = batch.batchId;
        if (executed[batchId]) revert BatchAlreadyExecuted(batchId);
        if (block.timestamp > batch.expiry) revert BatchExpired(batchId, batch.expiry);
        uint256 n = batch.recipients.length;
        if (n == 0) revert EmptyBatch();
        if (n != batch.amounts.length) revert LengthMismatch(n, batch.amounts.length);
        _checkSource(batch.asset, batch.source, batch.treasury);
        address signer = _recover(_digest(batch), signature);
        if (!isSigner[signer]) revert UnauthorizedSigner(signer);

        // Consumed before any external call: a re-entering or replayed call
        // finds it set, and a revert further down un-sets it with everything else.
        executed[batchId] = true;

        uint256 total;
        uint256 failedCount;
        uint256 failedAmount;
        if (batch.asset == address(0)) {
            (total, failedCount, failedAmount) = _payNative(batchId, batch.recipients, batch.amounts);
        } else {
            total = _payToken(batch);
        }
        emit BatchExecuted(batchId, batch.asset, signer, n, total, failedCount, failedAmount);
    }

    function _payNative(bytes32 batchId, address[] calldata recipients, uint256[] calldata amounts)
        private
        returns (uint256 total, uint256 failedCount, uint256 failedAmount)
    {
        uint256 n = recipients.length;
        for (uint256 i; i < n; ++i) {
            _checkPayout(i, recipients[i], amounts[i]);
            total += amounts[i];
        }
        // Checked up front: a value call beyond the balance fails silently,
        // which would look like a recipient failure.
        if (address(this).balance < total) revert InsufficientBalance(address(this).balance, total);
        uint256 gasLimit = nativeGasLimit;
        uint256 needed = (gasLimit * 64) / 63 + CALL_RESERVE;
        for (uint256 i; i < n; ++i) {
            address to = recipients[i];
            uint256 amount = amounts[i];
            // Without this a submitter could pick a gas limit that starves one
            // recipient's call and so turn a good payout into a recorded failure.
            if (gasleft() < needed) revert InsufficientGas(i);
            bool ok;
            assembly ("memory-safe") {
                // No return data is copied: a recipient cannot make us pay for a huge one.
                ok := call(gasLimit, to, amount, 0, 0, 0, 0)
            }
            if (ok) {
                emit PayoutSent(batchId, i, to, address(0), amount);
            } else {
                ++failedCount;
                failedAmount += amount;
                emit PayoutFailed(batchId, i, to, address(0), amount);
            }
        }
        if (failedAmount != 0) failedNativeTotal += failedAmount;
    }

    function _payToken(Batch calldata batch) private returns (uint256 total) {
        address asset = batch.asset;
        // A call to an address without code "succeeds" with no return data.
        if (asset.code.length == 0) revert NotAContract(asset);
        address[] calldata recipients = batch.recipients;
        uint256[] calldata amounts = batch.amounts;
        for (uint256 i; i < recipients.length; ++i) {
            address to = recipients[i];
            uint256 amount = amounts[i];
            _checkPayout(i, to, amount);
            total += amount;
            if (!_transferToken(asset, batch.source, batch.treasury, to, amount)) {
                revert TokenTransferFailed(i, to, amount);
            }
            emit PayoutSent(batch.batchId, i, to, asset, amount);
        }
    }

    function _checkPayout(uint256 i, address to, uint256 amount) private view {
        if (to == address(0) || to == address(this)) revert BadRecipient(i, to);
        if (amount == 0) revert ZeroAmount(i);
    }

    function _checkSource(address asset, uint8 source, address treasury) private pure {
        bool ok = source == SOURCE_CONTRACT
            ? treasury == address(0)
            : (source == SOURCE_TREASURY && asset != address(0) && treasury != address(0));
        if (!ok) revert BadFundingSource(source, treasury);
    }

    /// transfer / transferFrom that accepts tokens returning nothing (USDT)
    /// and rejects ones returning false.
    function _transferToken(address token, uint8 source, address from, address to, uint256 amount)
        private
        returns (bool success)
    {
        assembly ("memory-safe") {
            let p := mload(0x40)
            switch source
            case 1 {
                mstore(p, shl(224, 0x23b872dd)) // transferFrom(address,address,uint256)
                mstore(add(p, 4), from)
                mstore(add(p, 36), to)
                mstore(add(p, 68), amount)
                success := call(gas(), token, 0, p, 100, 0, 32)
            }
            default {
                mstore(p, shl(224, 0xa9059cbb)) // transfer(address,uint256)
                mstore(add(p, 4), to)
                mstore(add(p, 36), amount)
                success := call(gas(), token, 0, p, 68, 0, 32)
            }
            success := and(success, or(iszero(returndatasize()), and(gt(returndatasize(), 31), eq(mload(0), 1))))
        }
    }

    // ------------------------------------------------------------- signatures

    function _digest(Batch calldata batch) private view returns (bytes32) {
        // EIP-712 encodes an array as the hash of its elements' 32-byte
        // encodings, which is what encodePacked gives for address[]/uint256[].
        bytes32 structHash = keccak256(
            abi.encode(
                BATCH_TYPEHASH,
                batch.batchId,
                batch.asset,
                batch.source,
                batch.treasury,
                keccak256(abi.encodePacked(batch.recipients)),
                keccak256(abi.encodePacked(batch.amounts)),
                batch.expiry
            )
        );
        return _hashTypedDataV4(structHash);
    }

    function _recover(bytes32 digest, bytes calldata sig) private pure returns (address signer) {
        // 65 bytes, s in the lower half, v 27 or 28, a non-zero signer: else InvalidSignature.
        (address recovered, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, sig);
        if (err != ECDSA.RecoverError.NoError) revert InvalidSignature();
        signer = recovered;
    }

    /// Recomputed after a chain split so a signature for one fork is void on the other.
    function domainSeparator() public view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /// The digest a signer must sign for this batch (lets off-chain code check its own hashing).
    function batchDigest(Batch calldata batch) external view returns (bytes32) {
        return _digest(batch);
    }

    // EIP-5267 `eip712Domain()` comes from OpenZeppelin's EIP712.

    // ------------------------------------------------------------------ admin

    function setSigner(address signer, bool allowed) external onlyOwner {
        if (signer == address(0)) revert ZeroAddress();
        isSigner[signer] = allowed;
        emit SignerSet(signer, allowed);
    }

    function setNativeGasLimit(uint256 gasLimit) external onlyOwner {
        if (gasLimit > MAX_NATIVE_GAS) revert GasLimitTooHigh(gasLimit);
        nativeGasLimit = gasLimit;
        emit NativeGasLimitSet(gasLimit);
    }

    function pause() external onlyOwner {
        paused = true;
        emit Paused(msg.sender);
    }

    function unpause() external onlyOwner {
        paused = false;
        emit Unpaused(msg.sender);
    }

    /// Two steps, so a typo cannot hand the contract to an address nobody controls.
    /// Passing address(0) cancels a pending transfer.
    function transferOwnership(address newOwner) external onlyOwner {
        pendingOwner = newOwner;
        emit OwnershipTransferStarted(owner, newOwner);
    }

    function acceptOwnership() external {
        if (msg.sender != pendingOwner) revert NotPendingOwner(msg.sender);
        emit OwnershipTransferred(owner, msg.sender);
        owner = msg.sender;
        pendingOwner = address(0);
    }

    /// Recover native coin (e.g. left by failed payouts) or tokens held here.
    function sweep(address asset, address to, uint256 amount) external onlyOwner nonReentrant {
        if (to == address(0)) revert ZeroAddress();
        bool ok;
        if (asset == address(0)) {
            (ok,) = to.call{value: amount}("");
        } else {
            if (asset.code.length == 0) revert NotAContract(asset);
            ok = _transferToken(asset, SOURCE_CONTRACT, address(0), to, amount);
        }
        if (!ok) revert SweepFailed();
        emit Swept(asset, to, amount);
    }
}
