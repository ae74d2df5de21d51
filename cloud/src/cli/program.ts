import fs from "node:fs";
import { type ErrorCode, FieldgateError, isErrorCode } from "@fieldgate/shared";
import { Command, CommanderError } from "commander";
import { type CliIo, ExitCode, withConnection } from "./cli-support.js";
import { credentialsCommand } from "./credentials-command.js";
import { deviceTypesCommand } from "./device-types-command.js";
import { devicesCommand } from "./devices-command.js";
import { firmwareCommand } from "./firmware-command.js";
import { groupsCommand } from "./groups-command.js";
import { migrateCommand } from "./migrate-command.js";
import { organizationsCommand, orgCommand } from "./organizations-command.js";
import { rolloutsCommand } from "./rollouts-command.js";
import { serveCommand } from "./serve-command.js";
import { sessionCommands, usersCommand } from "./users-command.js";

/** Exit codes: 0 done, 1 the operation failed, 2 usage or configuration error. */
export const EXIT = { ok: 0, failure: 1, usage: 2 } as const;

const exitCodeFor = (code: ErrorCode): number =>
  code === "CONFIG_INVALID" || code === "VALIDATION_FAILED" ? EXIT.usage : EXIT.failure;

/** The cloud package's version, read when the program is built (never at import). */
export function cliVersion(): string {
  try {
    const pkg = JSON.parse(fs.readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
      version?: string;
    };
    return pkg.version ?? "0.0.0";
  } catch {
    return "0.0.0";
  }
}

/** The line printed for a failure: `error CODE: message (field: f)`; never a stack trace. */
export function formatError(err: unknown): { line: string; code: ErrorCode } {
  if (err instanceof FieldgateError) {
    return { line: `error ${err.code}: ${err.message}${err.field ? ` (field: ${err.field})` : ""}`, code: err.code };
  }
  const system = err as NodeJS.ErrnoException;
  if (typeof system?.code === "string" && typeof system.path === "string") {
    // A file the command was pointed at: the operator's input, not a defect.
    return {
      line: `error CONFIG_INVALID: cannot use ${JSON.stringify(system.path)}: ${system.code}; check the path given`,
      code: "CONFIG_INVALID",
    };
  }
  return { line: `error INTERNAL: ${system?.message ?? String(err)}`, code: "INTERNAL" };
}

/** Every command of the tree, the root first. */
export function allCommands(root: Command): Command[] {
  return [root, ...root.commands.flatMap((c) => allCommands(c))];
}

/** The full name of a command, like `fieldgate-cloud devices list`. */
export function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) names.unshift(c.name());
  return names.join(" ");
}

/**
 * Builds the `fieldgate-cloud` program. `run(argv)` returns the exit code instead of exiting, so
 * tests drive every command in-process.
 */
export function buildProgram(
  io: CliIo,
  version = cliVersion(),
): { program: Command; run: (argv: string[]) => Promise<number> } {
  const program = new Command("fieldgate-cloud")
    .description("fieldgate cloud: CA, device registry, enrollment, mTLS MQTT broker and REST API")
    // Only in front of a subcommand: after `firmware upload`, --version is the image's version.
    .version(version, "-V, --version", "print the fieldgate-cloud version (before any subcommand)")
    // Root options are read up to the subcommand; the subcommand reads its own after it. The
    // connection flags are declared on both, so they work in either place.
    .enablePositionalOptions();
  withConnection(program);

  program.addCommand(serveCommand(io, version));
  program.addCommand(devicesCommand(io));
  program.addCommand(groupsCommand(io));
  program.addCommand(deviceTypesCommand(io));
  program.addCommand(credentialsCommand(io));
  program.addCommand(usersCommand(io));
  for (const command of sessionCommands(io)) program.addCommand(command);
  program.addCommand(organizationsCommand(io));
  program.addCommand(firmwareCommand(io));
  program.addCommand(rolloutsCommand(io));
  program.addCommand(orgCommand(io));
  program.addCommand(migrateCommand(io));

  // Commands added with addCommand inherit no settings: every one gets the coded usage errors.
  for (const command of allCommands(program)) {
    command.exitOverride().configureOutput({
      writeOut: (s) => io.out(s.replace(/\n$/, "")),
      writeErr: (s) => io.err(s.replace(/\n$/, "")),
      outputError: (s, write) =>
        write(
          `error VALIDATION_FAILED: ${s.replace(/^error: /, "").trim()} (see \`${commandPath(command)} --help\`)\n`,
        ),
    });
  }

  const fail = (err: unknown): number => {
    if (err instanceof ExitCode) return err.code;
    if (err instanceof CommanderError) {
      if (err.code === "commander.helpDisplayed" || err.code === "commander.version") return EXIT.ok;
      // A command group without its subcommand: commander printed the group's help on stderr.
      if (err.code === "commander.help") io.err("error VALIDATION_FAILED: give one of the subcommands listed above");
      return EXIT.usage;
    }
    const { line, code } = formatError(err);
    io.err(line);
    return isErrorCode(code) ? exitCodeFor(code) : EXIT.failure;
  };

  return {
    program,
    run: async (argv: string[]) => {
      try {
        await program.parseAsync(argv, { from: "user" });
        return EXIT.ok;
      } catch (err) {
        return fail(err);
      }
    },
  };
}
