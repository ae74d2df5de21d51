// Preloaded (`node --import`) into the demo's cloud and agent. The demo talks to them over an IPC
// channel it never uses; when the demo dies, even by SIGKILL, the channel closes and the child
// stops as cleanly as on SIGTERM instead of living on as an orphan holding the demo's ports.
if (process.channel) {
  // The channel alone must not keep a process alive that has finished its work.
  process.channel.unref();
  process.once("disconnect", () => process.kill(process.pid, "SIGTERM"));
}
