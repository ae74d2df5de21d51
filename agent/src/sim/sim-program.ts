import { Command } from "commander";

/** `fieldgate-sim`: N simulated gateways on the agent's own code paths; progress on stderr, JSON summary on stdout. */
export function buildSimProgram(): Command {
  return new Command("fieldgate-sim")
    .description("simulate a fleet of fieldgate gateways against a cloud, with the agent's own code")
    .option("--url <url>", "cloud API URL (env FIELDGATE_URL; default: the cloud running on --cloud-data-dir)")
    .option("--ca-file <file>", "cloud CA certificate (env FIELDGATE_CA_FILE; default <cloud-data-dir>/pki/ca.crt)")
    .option("--credential <id:secret>", "operator API credential for --enroll (env FIELDGATE_CREDENTIAL)")
    .option("--cloud-data-dir <dir>", "data directory of a cloud on this host: URL, CA and admin credential")
    .option("--fleet-dir <dir>", "where the fleet's identities and outboxes live (default: a temporary one)")
    .option("--devices <n>", "number of simulated gateways", "10")
    .option("--rate <r>", "readings per second per device", "1")
    .option("--batch <b>", "readings per MQTT message at most", "100")
    .option("--max-in-flight <n>", "batches awaiting PUBACK per device", "8")
    .option("--enroll", "register the devices (one bulk import) and enroll them inside their windows")
    .option("--type <name>", "device type of the registered devices (for firmware jobs)")
    .option("--fail-updates <pct>", "share of devices whose update jobs fail at INSTALLING, like 10%", "0")
    .option("--kill-downloads <pct>", "share of devices whose image download is cut midway and resumed", "0")
    .option("--duration <d>", "how long to publish, like 30s", "10s")
    .option("--backlog <n>", "readings each device writes to its outbox offline, before connecting", "0")
    .option("--until-drained", "with --rate 0: end once every outbox is empty")
    .option("--expect-jobs <n>", "end once this many update jobs have finished", "0")
    .option("--concurrency <n>", "enrollment requests in flight at once", "64")
    .option("--drain-timeout <d>", "how long the end waits for unacknowledged readings", "10s")
    .option("--progress-interval <d>", "how often to print progress on stderr", "1s")
    .option("--log-level <level>", "agent log level of the simulated devices (stderr)", "silent")
    .exitOverride()
    .configureOutput({
      // The agent CLI's form: `error CODE: message`, for usage errors too.
      outputError: (s, write) => write(`error VALIDATION_FAILED: ${s.replace(/^error: /, "").trim()}\n`),
    });
}
