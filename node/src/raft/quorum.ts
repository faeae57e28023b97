// Majority quorums. With single-step membership changes there is one voter set
// at a time (no joint configurations), so both questions raft asks of a quorum
// reduce to "what does the median voter say".

export type VoteResult = "pending" | "won" | "lost";

/**
 * The largest index that a majority of `voters` has acknowledged, given each
 * voter's acknowledged index (missing = 0). For an empty voter set this is 0:
 * nothing can be committed without voters.
 */
export function majorityCommitted(voters: Iterable<bigint>, acked: (id: bigint) => bigint | undefined): bigint {
  // One array, sorted as it fills; the voters' order does not matter.
  const idxs: bigint[] = [];
  for (const id of voters) insertSorted(idxs, acked(id) ?? 0n);
  const n = idxs.length;
  if (n === 0) return 0n;
  // With n voters a quorum is q = floor(n/2)+1; the q-th largest index is on a quorum.
  const q = Math.floor(n / 2) + 1;
  return idxs[n - q]!;
}

/**
 * The values in increasing order. Raft sorts a handful of ids or indexes on every
 * broadcast and acknowledgement: an insertion sort, because Array.prototype.sort
 * allocated about as much per call as the rest of a put's raft step (seen in a
 * heap profile).
 */
export function sortAscending(xs: Iterable<bigint>): bigint[] {
  const out: bigint[] = [];
  for (const x of xs) insertSorted(out, x);
  return out;
}

/** Inserts x into the ascending array `out`, keeping it ascending (one insertion-sort step). */
function insertSorted(out: bigint[], x: bigint): void {
  let i = out.length;
  out.push(x);
  for (; i > 0 && out[i - 1]! > x; i--) out[i] = out[i - 1]!;
  out[i] = x;
}

/**
 * The outcome of an election given the votes received so far (true = granted).
 * An empty voter set wins by convention (there is nobody to ask), as in etcd.
 */
export function majorityVoteResult(voters: readonly bigint[], votes: ReadonlyMap<bigint, boolean>): VoteResult {
  if (voters.length === 0) return "won";
  let granted = 0;
  let missing = 0;
  for (const id of voters) {
    const v = votes.get(id);
    if (v === undefined) missing++;
    else if (v) granted++;
  }
  const q = Math.floor(voters.length / 2) + 1;
  if (granted >= q) return "won";
  if (granted + missing >= q) return "pending";
  return "lost";
}
