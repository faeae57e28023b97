// The leader's (and candidate's) view of the membership: who votes, who learns,
// how far each has replicated, and the votes of the current election.

import { type VoteResult, majorityCommitted, majorityVoteResult, sortAscending } from "../quorum.js";
import type { ConfState } from "../types.js";
import { Inflights } from "./inflights.js";
import { Progress } from "./progress.js";

/** The ids in increasing order. */
export function sortIds(ids: Iterable<bigint>): bigint[] {
  return sortAscending(ids);
}

/**
 * Invariants: voters and learners are disjoint; progress has exactly one entry per
 * voter and learner (with isLearner set accordingly).
 */
export class ProgressTracker {
  voters = new Set<bigint>();
  learners = new Set<bigint>();
  progress = new Map<bigint, Progress>();
  /** Votes received in the current election (true = granted). */
  votes = new Map<bigint, boolean>();

  constructor(
    readonly maxInflight: number,
    readonly maxInflightBytes: number,
  ) {}

  newProgress(next: bigint, isLearner: boolean): Progress {
    return new Progress(next, new Inflights(this.maxInflight, this.maxInflightBytes), isLearner);
  }

  confState(): ConfState {
    return { voters: sortIds(this.voters), learners: sortIds(this.learners) };
  }

  voterIds(): bigint[] {
    return sortIds(this.voters);
  }

  /** All tracked ids (voters and learners) in increasing order. */
  ids(): bigint[] {
    return sortIds(this.progress.keys());
  }

  /** Calls fn for each tracked node in increasing id order (deterministic output order). */
  visit(fn: (id: bigint, pr: Progress) => void): void {
    for (const id of this.ids()) fn(id, this.progress.get(id)!);
  }

  /** A single voter, and it can only be the local node: reads need no quorum round. */
  isSingleton(): boolean {
    return this.voters.size === 1;
  }

  /** The largest index replicated on a quorum of voters (learners never count). */
  committed(): bigint {
    return majorityCommitted(this.voters, this.matchOf);
  }

  private readonly matchOf = (id: bigint): bigint | undefined => this.progress.get(id)?.match;

  /** Whether a quorum of voters has been active since the last check (learners never count). */
  quorumActive(): boolean {
    const votes = new Map<bigint, boolean>();
    for (const id of this.voters) votes.set(id, this.progress.get(id)?.recentActive ?? false);
    return majorityVoteResult(this.voterIds(), votes) === "won";
  }

  resetVotes(): void {
    this.votes = new Map();
  }

  /** Records a vote; the first answer from a node counts, later ones are ignored. */
  recordVote(id: bigint, granted: boolean): void {
    if (!this.votes.has(id)) this.votes.set(id, granted);
  }

  tallyVotes(): { granted: number; rejected: number; result: VoteResult } {
    let granted = 0;
    let rejected = 0;
    for (const id of this.voters) {
      const v = this.votes.get(id);
      if (v === undefined) continue;
      if (v) granted++;
      else rejected++;
    }
    return { granted, rejected, result: majorityVoteResult(this.voterIds(), this.votes) };
  }

  describeConfig(): string {
    let s = `voters=(${this.voterIds().join(" ")})`;
    if (this.learners.size > 0) s += ` learners=(${sortIds(this.learners).join(" ")})`;
    return s;
  }
}
