// Text renderings of raft values for traces and test output, close to
// etcd-io/raft's describe.go so scenario files read alike.

import type { Ready } from "./rawnode.js";
import {
  type ConfState,
  type Entry,
  type HardState,
  type Message,
  type Snapshot,
  type SoftState,
  type StateType,
  decodeConfChange,
} from "./types.js";

const STATE_NAMES: Record<StateType, string> = {
  follower: "StateFollower",
  preCandidate: "StatePreCandidate",
  candidate: "StateCandidate",
  leader: "StateLeader",
};

export function describeState(s: StateType): string {
  return STATE_NAMES[s];
}

const decoder = new TextDecoder();

export function describeData(data: Uint8Array): string {
  return JSON.stringify(decoder.decode(data));
}

export function describeConfChangeData(data: Uint8Array): string {
  try {
    const cc = decodeConfChange(data);
    const prefix = { addNode: "v", addLearnerNode: "l", removeNode: "r", updateNode: "u" }[cc.type];
    return `${prefix}${cc.nodeId}`;
  } catch {
    return `<invalid conf change ${data.length} bytes>`;
  }
}

export function describeEntry(e: Entry): string {
  if (e.type === "confChange") return `${e.term}/${e.index} EntryConfChange ${describeConfChangeData(e.data)}`;
  return `${e.term}/${e.index} EntryNormal ${describeData(e.data)}`;
}

export function describeEntries(ents: readonly Entry[]): string {
  return ents.map(describeEntry).join("\n");
}

export function describeHardState(hs: HardState): string {
  let s = `Term:${hs.term}`;
  if (hs.vote !== 0n) s += ` Vote:${hs.vote}`;
  s += ` Commit:${hs.commit}`;
  return s;
}

export function describeSoftState(ss: SoftState): string {
  return `Lead:${ss.lead} State:${describeState(ss.state)}`;
}

export function describeConfState(cs: ConfState): string {
  return `Voters:[${cs.voters.join(" ")}] Learners:[${cs.learners.join(" ")}]`;
}

export function describeSnapshot(s: Snapshot): string {
  return `Index:${s.metadata.index} Term:${s.metadata.term} ConfState:${describeConfState(s.metadata.confState)}`;
}

export function describeMessage(m: Message): string {
  let s = `${m.from}->${m.to} ${m.type} Term:${m.term} Log:${m.logTerm}/${m.index}`;
  if (m.reject) s += ` Rejected (Hint: ${m.rejectHint})`;
  if (m.commit !== 0n) s += ` Commit:${m.commit}`;
  if (m.entries.length > 0) s += ` Entries:[${m.entries.map(describeEntry).join(", ")}]`;
  if (m.context !== undefined && m.context.length > 0) s += ` Context:${describeData(m.context)}`;
  if (m.snapshot !== undefined) s += `\n  Snapshot: ${describeSnapshot(m.snapshot)}`;
  return s;
}

export function describeReady(rd: Ready): string {
  const lines: string[] = [`Ready MustSync=${rd.mustSync}:`];
  if (rd.softState) lines.push(describeSoftState(rd.softState));
  if (rd.hardState) lines.push(`HardState ${describeHardState(rd.hardState)}`);
  if (rd.readStates.length > 0) {
    lines.push("ReadStates:");
    for (const rs of rd.readStates) lines.push(`  Index:${rs.index} Ctx:${describeData(rs.requestCtx)}`);
  }
  if (rd.entries.length > 0) {
    lines.push("Entries:");
    for (const e of rd.entries) lines.push(describeEntry(e));
  }
  if (rd.snapshot) lines.push(`Snapshot ${describeSnapshot(rd.snapshot)}`);
  if (rd.committedEntries.length > 0) {
    lines.push("CommittedEntries:");
    for (const e of rd.committedEntries) lines.push(describeEntry(e));
  }
  if (rd.messages.length > 0) {
    lines.push("Messages:");
    for (const m of rd.messages) lines.push(describeMessage(m));
  }
  if (rd.messagesAfterPersist.length > 0) {
    lines.push("MessagesAfterPersist:");
    for (const m of rd.messagesAfterPersist) lines.push(describeMessage(m));
  }
  return lines.join("\n");
}
