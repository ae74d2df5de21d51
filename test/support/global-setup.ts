import { randomBytes } from "node:crypto";
import { dropRunDatabases, LOCAL_POSTGRES, testPostgresServer } from "./test-database.js";

/**
 * Tags this run's PostgreSQL databases (each test makes its own) and drops those a crashed test
 * left behind, on the suite's server and on the local one the conformance suites use.
 */
export default function setup(): () => Promise<void> {
  const run = `r${randomBytes(3).toString("hex")}`;
  process.env.FIELDGATE_TEST_RUN = run;
  return async () => {
    const servers = new Set([LOCAL_POSTGRES, testPostgresServer()].filter((s): s is string => s !== undefined));
    for (const server of servers) await dropRunDatabases(server, run).catch(() => undefined);
  };
}
