import type { ErrorCode } from "@fieldgate/shared";

export type DoctorStatus = "ok" | "warning" | "fail";

/** One line of the diagnosis: what was checked, how it went, and the fix in one sentence. */
export interface DoctorResult {
  check: string;
  status: DoctorStatus;
  message: string;
  fix?: string;
  /** The error code behind a failure, where there is one (a config problem is CONFIG_INVALID). */
  code?: ErrorCode;
}
