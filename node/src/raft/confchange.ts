// Single-step membership changes (etcd's ConfChange v1). Each change adds, removes
// or promotes exactly one node, so the old and new voter sets always overlap in a
// majority and no joint configuration is needed.
//
// A change takes effect on a node when the application applies the committed
// entry and calls applyConfChange; the leader lets only one change be pending
// (appended but not yet applied) at a time.

import { RaftError } from "./errors.js";
import type { ProgressTracker } from "./tracker/tracker.js";
import type { ConfChange, ConfState } from "./types.js";

/**
 * Applies one change to the tracker. `lastIndex` is the local log's last index:
 * a new node's progress starts there (the leader probes backwards from it).
 * Throws ErrInvalid (leaving the tracker unchanged) for a change that would
 * leave no voters.
 */
export function applyChange(trk: ProgressTracker, cc: ConfChange, lastIndex: bigint): void {
  const id = cc.nodeId;
  if (id === 0n) return; // etcd treats a zero node id as a no-op change
  switch (cc.type) {
    case "addNode": {
      const pr = trk.progress.get(id);
      if (pr === undefined) {
        addProgress(trk, id, lastIndex, false);
      } else {
        // Promotion of a learner (or re-adding an existing voter, a no-op).
        pr.isLearner = false;
      }
      trk.learners.delete(id);
      trk.voters.add(id);
      return;
    }
    case "addLearnerNode": {
      if (trk.voters.has(id) && trk.voters.size === 1) {
        throw new RaftError("ErrInvalid", "removed all voters");
      }
      const pr = trk.progress.get(id);
      if (pr === undefined) addProgress(trk, id, lastIndex, true);
      else pr.isLearner = true; // a demotion, when the node was a voter
      trk.voters.delete(id);
      trk.learners.add(id);
      return;
    }
    case "removeNode": {
      if (trk.voters.has(id) && trk.voters.size === 1) {
        throw new RaftError("ErrInvalid", "removed all voters");
      }
      trk.voters.delete(id);
      trk.learners.delete(id);
      trk.progress.delete(id);
      return;
    }
    case "updateNode":
      return; // membership unchanged; the context is for the application
  }
}

function addProgress(trk: ProgressTracker, id: bigint, lastIndex: bigint, isLearner: boolean): void {
  const pr = trk.newProgress(lastIndex > 0n ? lastIndex : 1n, isLearner);
  // A node just added counts as active, or check-quorum could depose the leader
  // before the newcomer has had a chance to answer.
  pr.recentActive = true;
  trk.progress.set(id, pr);
}

/** Builds a tracker's membership from a ConfState (at start and on snapshot restore). */
export function restoreConfState(trk: ProgressTracker, cs: ConfState, lastIndex: bigint): void {
  trk.voters = new Set();
  trk.learners = new Set();
  trk.progress = new Map();
  for (const id of cs.voters) applyChange(trk, { type: "addNode", nodeId: id }, lastIndex);
  for (const id of cs.learners) {
    if (trk.voters.has(id)) throw new RaftError("ErrInvalid", `node ${id} is both voter and learner`);
    applyChange(trk, { type: "addLearnerNode", nodeId: id }, lastIndex);
  }
}
