import type { Logger } from "pino";

/**
 * Drives rollouts between job reports: starts installs as the rate and maintenance windows allow,
 * and times out jobs whose devices went quiet. A failing tick is logged and the next one runs.
 */
export class RolloutScheduler {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly rollouts: { tick(): number },
    private readonly logger: Logger,
    private readonly intervalMs = 1000,
  ) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.runOnce(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  runOnce(): void {
    try {
      this.rollouts.tick();
    } catch (err) {
      this.logger.error({ err: (err as Error).message }, "rollout tick failed");
    }
  }
}
