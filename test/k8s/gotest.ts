// Reads `go test -v` output.

export type Outcome = "PASS" | "FAIL" | "SKIP";

/** Every (sub)test's final line "--- PASS: Name (0.12s)", by full name. */
export function parseGoTest(out: string): Map<string, Outcome> {
  const results = new Map<string, Outcome>();
  for (const m of out.matchAll(/^\s*--- (PASS|FAIL|SKIP): (\S+) \(/gm)) results.set(m[2] ?? "", m[1] as Outcome);
  return results;
}
