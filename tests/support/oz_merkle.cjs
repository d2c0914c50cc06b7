// Reads {encoding, values} JSON on stdin; prints the dump and every value's proof of
// @openzeppelin/merkle-tree's StandardMerkleTree for them (the reference the Python tree is checked against).
const { StandardMerkleTree } = require("@openzeppelin/merkle-tree");
let input = "";
process.stdin.on("data", (c) => (input += c));
process.stdin.on("end", () => {
  const { encoding, values } = JSON.parse(input);
  const tree = StandardMerkleTree.of(values, encoding);
  const proofs = values.map((_, i) => tree.getProof(i));
  process.stdout.write(JSON.stringify({ root: tree.root, dump: tree.dump(), proofs }));
});
