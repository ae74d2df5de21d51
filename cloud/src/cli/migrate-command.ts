import { Command } from "commander";
import type { CliIo } from "./cli-support.js";

/**
 * `fieldgate-cloud migrate --from <data-dir> --to postgres://…`: moves an embedded cloud's whole
 * database into an empty PostgreSQL database. The data dir keeps everything else (CA, keys,
 * credentials files), so the cloud then runs with both `--data-dir` and `--database`.
 */
export function migrateCommand(io: CliIo): Command {
  return new Command("migrate")
    .description("copy an embedded cloud's database (<data-dir>/fieldgate.db) into an empty PostgreSQL database")
    .requiredOption("--from <data-dir>", "the data directory of the embedded cloud; stop that cloud first")
    .requiredOption("--to <url>", "the empty PostgreSQL database, postgres://user@host:5432/db")
    .action(async (opts: { from: string; to: string }) => {
      // Loaded here, as serve loads the cloud: the other commands need no database driver.
      const { migrateToPostgres } = await import("./migrate-to-postgres.js");
      await migrateToPostgres(io, opts.from, opts.to);
    });
}
