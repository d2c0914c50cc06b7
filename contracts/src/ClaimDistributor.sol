// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

/// @title Pull payments of distributions: Merkle claims per epoch, and single-use vouchers.
/// @notice The daemon publishes, per distribution epoch, an OpenZeppelin
/// `StandardMerkleTree` of leaves `(uint256 index, address account, uint256
/// amount)`: leaf = keccak256(bytes.concat(keccak256(abi.encode(index,
/// account, amount)))), pairs hashed sorted. The owner registers the root with
/// the tree's total, a claim deadline and where the unclaimed rest goes, then
/// funds exactly that total. Anyone may submit a claim for a leaf; the amount
/// always goes to the leaf's account, once (a claimed bitmap per epoch).
///
/// Funding: claims of an epoch are refused until it holds its whole total
/// (`FundedShort`): a tree funded short would pay the first claimants and
/// leave the last ones nothing. Funding above the total is refused too, and
/// the claimed sum can never exceed it.
///
/// Window: claims are accepted until `deadline` (inclusive, block time).
/// After it, the owner sweeps funded - claimed to the epoch's `sweepTo`, once.
///
/// Vouchers (ERC-3009 style, single claims outside a tree): the owner-set
/// `voucherSigner` signs an EIP-712 `Voucher(nonce, recipient, asset, amount,
/// validAfter, validBefore)`; anyone may submit it, the amount goes to
/// `recipient`, from a separate voucher balance per asset. A random 32-byte
/// nonce is used at most once; the owner may revoke an unused one.
///
/// Compiled for `paris` (no PUSH0, no transient storage), like PayoutBatcher.
contract ClaimDistributor is EIP712 {
    using SafeERC20 for IERC20;

    string public constant NAME = "ChainsettleClaimDistributor";
    string public constant VERSION = "1";
    bytes32 public constant VOUCHER_TYPEHASH = keccak256(
        "Voucher(bytes32 nonce,address recipient,address asset,uint256 amount,uint256 validAfter,uint256 validBefore)"
    );

    struct Epoch {
        bytes32 root;
        address asset; // address(0): the chain's native coin
        uint256 total; // the sum of the tree's amounts
        uint256 funded;
        uint256 claimed;
        uint64 deadline;
        bool swept;
        address sweepTo;
    }

    struct Voucher {
        bytes32 nonce;
        address recipient;
        address asset;
        uint256 amount;
        uint256 validAfter;
        uint256 validBefore;
    }

    address public owner;
    address public voucherSigner;
    mapping(uint256 => Epoch) public epochs;
    mapping(uint256 => mapping(uint256 => uint256)) private claimedWords;
    mapping(bytes32 => uint8) public voucherState; // 0 unused, 1 redeemed, 2 revoked
    mapping(address => uint256) public voucherFunds;
    uint256 private locked = 1;

    event EpochCreated(uint256 indexed epochId, bytes32 root, address asset, uint256 total, uint64 deadline, address sweepTo);
    event EpochFunded(uint256 indexed epochId, address indexed from, uint256 amount);
    event Claimed(uint256 indexed epochId, uint256 index, address indexed account, uint256 amount);
    event Swept(uint256 indexed epochId, address indexed to, uint256 amount);
    event VouchersFunded(address indexed asset, address indexed from, uint256 amount);
    event VoucherRedeemed(bytes32 indexed nonce, address indexed recipient, address asset, uint256 amount);
    event VoucherRevoked(bytes32 indexed nonce);
    event VoucherSignerSet(address signer);

    error NotOwner(address caller);
    error Reentrancy();
    error EpochExists(uint256 epochId);
    error UnknownEpoch(uint256 epochId);
    error BadEpoch();
    error FundedShort(uint256 funded, uint256 total);
    error OverFunded(uint256 funded, uint256 total);
    error BadValue(uint256 sent, uint256 expected);
    error ClaimWindowClosed(uint64 deadline);
    error ClaimWindowOpen(uint64 deadline);
    error AlreadyClaimed(uint256 index);
    error InvalidProof();
    error AlreadySwept(uint256 epochId);
    error VoucherUsed(bytes32 nonce, uint8 state);
    error VoucherNotValid(uint256 validAfter, uint256 validBefore);
    error InvalidSignature();
    error VoucherFundsShort(uint256 available, uint256 amount);
    error TransferFailed();

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        _;
    }

    modifier nonReentrant() {
        if (locked != 1) revert Reentrancy();
        locked = 2;
        _;
        locked = 1;
    }

    constructor(address signer) EIP712(NAME, VERSION) {
        owner = msg.sender;
        voucherSigner = signer;
        emit VoucherSignerSet(signer);
    }

    function setVoucherSigner(address signer) external onlyOwner {
        voucherSigner = signer;
        emit VoucherSignerSet(signer);
    }

    // -- Merkle epochs ------------------------------------------------------

    function createEpoch(uint256 epochId, bytes32 root, address asset, uint256 total, uint64 deadline, address sweepTo)
        external
        onlyOwner
    {
        if (epochs[epochId].root != bytes32(0)) revert EpochExists(epochId);
        if (root == bytes32(0) || total == 0 || sweepTo == address(0) || deadline <= block.timestamp) revert BadEpoch();
        epochs[epochId] = Epoch(root, asset, total, 0, 0, deadline, false, sweepTo);
        emit EpochCreated(epochId, root, asset, total, deadline, sweepTo);
    }

    /// Adds `amount` to an epoch's funding: native coin as msg.value, a token
    /// by transferFrom the caller (who approved this contract).
    function fundEpoch(uint256 epochId, uint256 amount) external payable nonReentrant {
        Epoch storage e = epochs[epochId];
        if (e.root == bytes32(0)) revert UnknownEpoch(epochId);
        if (e.funded + amount > e.total) revert OverFunded(e.funded + amount, e.total);
        e.funded += amount;
        _pull(e.asset, amount);
        emit EpochFunded(epochId, msg.sender, amount);
    }

    function isClaimed(uint256 epochId, uint256 index) public view returns (bool) {
        return claimedWords[epochId][index >> 8] & (1 << (index & 0xff)) != 0;
    }

    function claim(uint256 epochId, uint256 index, address account, uint256 amount, bytes32[] calldata proof)
        external
        nonReentrant
    {
        Epoch storage e = epochs[epochId];
        if (e.root == bytes32(0)) revert UnknownEpoch(epochId);
        if (block.timestamp > e.deadline) revert ClaimWindowClosed(e.deadline);
        if (e.funded < e.total) revert FundedShort(e.funded, e.total);
        if (isClaimed(epochId, index)) revert AlreadyClaimed(index);
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(index, account, amount))));
        if (!MerkleProof.verifyCalldata(proof, e.root, leaf)) revert InvalidProof();
        claimedWords[epochId][index >> 8] |= 1 << (index & 0xff);
        e.claimed += amount;
        if (e.claimed > e.total) revert FundedShort(e.total, e.claimed); // a tree whose leaves exceed its total
        emit Claimed(epochId, index, account, amount);
        _send(e.asset, account, amount);
    }

    /// After the deadline: what was funded and not claimed goes to `sweepTo`, once.
    function sweep(uint256 epochId) external onlyOwner nonReentrant {
        Epoch storage e = epochs[epochId];
        if (e.root == bytes32(0)) revert UnknownEpoch(epochId);
        if (block.timestamp <= e.deadline) revert ClaimWindowOpen(e.deadline);
        if (e.swept) revert AlreadySwept(epochId);
        e.swept = true;
        uint256 rest = e.funded - e.claimed;
        emit Swept(epochId, e.sweepTo, rest);
        if (rest > 0) _send(e.asset, e.sweepTo, rest);
    }

    // -- vouchers -------------------------------------------------------------

    function fundVouchers(address asset, uint256 amount) external payable nonReentrant {
        voucherFunds[asset] += amount;
        _pull(asset, amount);
        emit VouchersFunded(asset, msg.sender, amount);
    }

    function voucherDigest(Voucher calldata v) public view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(abi.encode(VOUCHER_TYPEHASH, v.nonce, v.recipient, v.asset, v.amount, v.validAfter, v.validBefore))
        );
    }

    function redeem(Voucher calldata v, bytes calldata signature) external nonReentrant {
        if (voucherState[v.nonce] != 0) revert VoucherUsed(v.nonce, voucherState[v.nonce]);
        if (block.timestamp < v.validAfter || block.timestamp >= v.validBefore) {
            revert VoucherNotValid(v.validAfter, v.validBefore);
        }
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(voucherDigest(v), signature);
        if (err != ECDSA.RecoverError.NoError || signer != voucherSigner || signer == address(0)) {
            revert InvalidSignature();
        }
        uint256 available = voucherFunds[v.asset];
        if (available < v.amount) revert VoucherFundsShort(available, v.amount);
        voucherState[v.nonce] = 1;
        voucherFunds[v.asset] = available - v.amount;
        emit VoucherRedeemed(v.nonce, v.recipient, v.asset, v.amount);
        _send(v.asset, v.recipient, v.amount);
    }

    function revokeVoucher(bytes32 nonce) external onlyOwner {
        if (voucherState[nonce] != 0) revert VoucherUsed(nonce, voucherState[nonce]);
        voucherState[nonce] = 2;
        emit VoucherRevoked(nonce);
    }

    // -- value ------------------------------------------------------------------

    function _pull(address asset, uint256 amount) private {
        if (asset == address(0)) {
            if (msg.value != amount) revert BadValue(msg.value, amount);
        } else {
            if (msg.value != 0) revert BadValue(msg.value, 0);
            IERC20(asset).safeTransferFrom(msg.sender, address(this), amount);
        }
    }

    function _send(address asset, address to, uint256 amount) private {
        if (asset == address(0)) {
            (bool ok,) = to.call{value: amount}("");
            if (!ok) revert TransferFailed();
        } else {
            IERC20(asset).safeTransfer(to, amount);
        }
    }
}
