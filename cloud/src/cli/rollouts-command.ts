import { type CreateRolloutBody, FieldgateError, type RolloutView } from "@fieldgate/shared";
import { Command } from "commander";
import { type CliIo, clientFor, wantsJson, withConnection } from "./cli-support.js";
import { renderFields, renderTable } from "./table.js";

const WATCH_POLL_MS = 2000;

interface CreateOptions {
  firmware: string;
  devices?: string;
  tag?: string;
  query?: string;
  group?: string;
  phases?: string;
  successThreshold?: string;
  failureThreshold?: string;
  rate?: string;
  maintenanceWindow?: string;
  timeout?: string;
  retries?: string;
  autoRollback?: boolean;
}

/** `fieldgate-cloud rollouts …`: phased firmware rollouts (issue #5). */
export function rolloutsCommand(io: CliIo, isTty = () => io.stdout.isTTY === true): Command {
  const print = io.out;
  const clientOf = clientFor(io);
  const rollouts = new Command("rollouts").description(
    "phased firmware rollouts: create, list, show, pause, resume, abort",
  );

  withConnection(
    rollouts
      .command("create")
      .description("start a rollout of an image to a set of devices, phase by phase")
      .requiredOption("--firmware <name@version>", "an uploaded image")
      .option("--devices <uuids>", "target: these devices, comma-separated")
      .option("--tag <tag>", "target: the devices carrying this tag")
      .option("--query <filters>", "target: device list filters, e.g. 'type=gw&online=true'")
      .option("--group <group>", "target: a group (id or name path) with its sub-groups")
      .option("--phases <marks>", "cumulative phases: 1%,10%,50%,100% or counts 5,50,500 (default 100%)")
      .option("--success-threshold <pct>", "a phase advances when this share succeeded (default 100%)")
      .option("--failure-threshold <pct>", "abort when failed ÷ started reaches this (default 100%: never)")
      .option("--rate <n/unit>", "most installs started per unit: 100/min, 2/s, 500/h (default: no limit)")
      .option("--maintenance-window <window>", '"cron, duration[, time zone]": installs start only inside it')
      .option("--timeout <duration>", "time each device has to finish (default: the cloud's --job-timeout)")
      .option("--retries <n>", "new attempts for a device that failed (default 0)")
      .option("--auto-rollback", "on abort, send the devices this rollout updated back to their previous version"),
  ).action(async (opts: CreateOptions, cmd: Command) => {
    const body: CreateRolloutBody = { firmware: opts.firmware, target: targetOf(opts) };
    if (opts.phases !== undefined) body.phases = opts.phases;
    if (opts.successThreshold !== undefined) body.successThreshold = opts.successThreshold;
    if (opts.failureThreshold !== undefined) body.failureThreshold = opts.failureThreshold;
    if (opts.rate !== undefined) body.rate = opts.rate;
    if (opts.maintenanceWindow !== undefined) body.maintenanceWindow = opts.maintenanceWindow;
    if (opts.timeout !== undefined) body.timeout = opts.timeout;
    if (opts.retries !== undefined) {
      if (!/^\d+$/.test(opts.retries)) {
        throw new FieldgateError("VALIDATION_FAILED", `--retries ${opts.retries} is not a whole number`, "retries");
      }
      body.retries = Number(opts.retries);
    }
    if (opts.autoRollback) body.autoRollback = true;
    const created = await clientOf(cmd).request<RolloutView>("POST", "/api/v1/rollouts", body);
    if (wantsJson(cmd)) return print(JSON.stringify(created, null, 2));
    print(`rollout ${created.id} created: ${describe(created)}`);
  });

  withConnection(rollouts.command("list").description("list rollouts, newest first")).action(
    async (_o: unknown, cmd: Command) => {
      const { items } = await clientOf(cmd).request<{ items: RolloutView[] }>("GET", "/api/v1/rollouts");
      if (wantsJson(cmd)) return print(JSON.stringify(items, null, 2));
      print(
        renderTable(
          ["ID", "FIRMWARE", "STATE", "PHASE", "DONE", "FAILED", "TOTAL", "REASON", "CREATED"],
          items.map((r) => [
            String(r.id),
            `${r.firmware.name}@${r.firmware.version}`,
            r.state,
            `${r.currentPhase + 1}/${r.phases.length}`,
            String(r.counts.succeeded),
            String(r.counts.failed),
            String(r.counts.total),
            r.stopReason ?? r.waitingFor ?? "",
            r.created,
          ]),
        ),
      );
    },
  );

  withConnection(
    rollouts
      .command("show <id>")
      .description("a rollout: counts per state and per phase, failing devices and their reasons")
      .option("--watch", "refresh until the rollout completes or is aborted"),
  ).action(async (id: string, opts: { watch?: boolean }, cmd: Command) => {
    const client = clientOf(cmd);
    for (;;) {
      const r = await client.request<RolloutView>("GET", `/api/v1/rollouts/${rolloutId(id)}`);
      if (wantsJson(cmd)) print(JSON.stringify(r, null, 2));
      else print(renderRollout(r, isTty()));
      if (!opts.watch || r.state === "completed" || r.state === "aborted") return;
      await new Promise((resolve) => setTimeout(resolve, WATCH_POLL_MS));
    }
  });

  for (const [action, text] of [
    ["pause", "stop starting installs; running ones go on"],
    ["resume", "start installs again; a phase held below the success threshold goes on to the next"],
    ["abort", "stop for good; with auto-rollback, updated devices go back to their previous version"],
  ] as const) {
    withConnection(rollouts.command(`${action} <id>`).description(text)).action(
      async (id: string, _o: unknown, cmd: Command) => {
        const r = await clientOf(cmd).request<RolloutView>("POST", `/api/v1/rollouts/${rolloutId(id)}/${action}`);
        if (wantsJson(cmd)) return print(JSON.stringify(r, null, 2));
        print(`rollout ${r.id} is ${r.state}${r.stopMessage ? `: ${r.stopMessage}` : ""}`);
      },
    );
  }
  return rollouts;
}

function targetOf(opts: CreateOptions): CreateRolloutBody["target"] {
  const given = (["devices", "tag", "query", "group"] as const).filter((k) => opts[k] !== undefined);
  if (given.length !== 1) {
    throw new FieldgateError(
      "VALIDATION_FAILED",
      "give exactly one target: --devices, --tag, --query or --group",
      given[1] ?? "target",
    );
  }
  if (opts.devices !== undefined)
    return {
      devices: opts.devices
        .split(",")
        .map((d) => d.trim())
        .filter(Boolean),
    };
  if (opts.tag !== undefined) return { tag: opts.tag };
  if (opts.query !== undefined) return { query: opts.query };
  const group = opts.group ?? "";
  return { group: /^\d+$/.test(group) ? Number(group) : group };
}

function rolloutId(text: string): string {
  if (!/^\d+$/.test(text)) throw new FieldgateError("VALIDATION_FAILED", `${text} is not a rollout id`, "id");
  return text;
}

function describe(r: RolloutView): string {
  const c = r.counts;
  return `${r.firmware.name}@${r.firmware.version} to ${c.total} devices in ${r.phases.length} phase(s), ${c.inProgress} started now${c.skipped ? `, ${c.skipped} skipped` : ""}`;
}

/** The `show` text; a progress bar only on a terminal, so scripts and logs get plain lines. */
export function renderRollout(r: RolloutView, tty: boolean): string {
  const c = r.counts;
  const finished = c.succeeded + c.failed + c.skipped + c.cancelled;
  const lines = [
    renderFields([
      ["id", String(r.id)],
      ["firmware", `${r.firmware.name}@${r.firmware.version}`],
      ["state", r.stopReason ? `${r.state} (${r.stopReason})` : r.state],
      ...(r.stopMessage ? ([["why", r.stopMessage]] as [string, string][]) : []),
      ...(r.waitingFor ? ([["waiting for", r.waitingFor]] as [string, string][]) : []),
      ["phase", `${r.currentPhase + 1} of ${r.phases.length}`],
      [
        "devices",
        `${c.total}: ${c.succeeded} succeeded, ${c.failed} failed, ${c.inProgress} in progress, ${c.pending} pending, ${c.skipped} skipped, ${c.cancelled} cancelled${c.rolledBack ? `, ${c.rolledBack} rolled back` : ""}`,
      ],
      ["thresholds", `success ${r.successThreshold}, failure ${r.failureThreshold}`],
      ["rate", r.rate ?? "no limit"],
      ["window", r.maintenanceWindow ? `${r.maintenanceWindow} (next ${r.nextWindowAt ?? "never"})` : "any time"],
      ["timeout", `${r.timeout}, ${r.retries} retries`],
      ["auto-rollback", r.autoRollback ? "yes" : "no"],
      ["created", `${r.created} by ${r.createdBy}`],
    ]),
  ];
  if (tty) lines.push(progressBar(finished, c.total));
  lines.push(
    "",
    renderTable(
      ["PHASE", "MARK", "DEVICES", "SUCCEEDED", "FAILED", "IN PROGRESS", "PENDING", "SKIPPED"],
      r.phases.map((p) => [
        `${p.index + 1}${p.index === r.currentPhase && r.state === "running" ? " *" : ""}`,
        p.mark,
        String(p.size),
        String(p.counts.succeeded),
        String(p.counts.failed),
        String(p.counts.inProgress),
        String(p.counts.pending),
        String(p.counts.skipped + p.counts.cancelled),
      ]),
    ),
  );
  if (r.failing && r.failing.length > 0) {
    lines.push(
      "",
      renderTable(
        ["DEVICE", "PHASE", "STATUS", "REASON", "ATTEMPTS", "ROLLBACK", "MESSAGE"],
        r.failing.map((f) => [
          f.device,
          String(f.phase + 1),
          f.status,
          f.reason ?? "",
          String(f.attempts),
          f.rollback ?? "",
          (f.message ?? "").split("\n")[0] ?? "",
        ]),
      ),
    );
  }
  return lines.join("\n");
}

function progressBar(done: number, total: number, width = 40): string {
  const share = total === 0 ? 1 : done / total;
  const filled = Math.round(share * width);
  return `[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${Math.floor(share * 100)}% (${done}/${total} finished)`;
}
