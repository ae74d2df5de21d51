import type { Logger } from "pino";

/**
 * Drives rollouts between job reports: starts installs as the rate and maintenance windows allow,
 * and times out jobs whose devices went quiet. A failing tick is logged and the next one runs.
 */
export class RolloutScheduler {
  private timer: NodeJS.Timeout | undefined;

  private running = false;

  constructor(
    private readonly rollouts: { tick(): Promise<number> },
    private readonly logger: Logger,
    private readonly intervalMs = 1000,
  ) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.runOnce(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One tick; a tick still running when the timer fires again is not overlapped by another from here. */
  async runOnce(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      await this.rollouts.tick();
    } catch (err) {
      this.logger.error({ err: (err as Error).message }, "rollout tick failed");
    } finally {
      this.running = false;
    }
  }
}
