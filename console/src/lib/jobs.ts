/**
 * The update job's vocabulary as the cloud reports it (docs/updates.md "States"): its steps in
 * order, and the statuses that end it, with the words the console shows for each.
 */
export const JOB_STEPS: { key: string; label: string }[] = [
  { key: "QUEUED", label: "Queued" },
  { key: "CHECKING_PERMISSIONS", label: "Checking permissions" },
  { key: "DOWNLOADING", label: "Downloading" },
  { key: "VERIFYING", label: "Verifying" },
  { key: "INSTALLING", label: "Installing" },
  { key: "ACTIVATING", label: "Activating" },
  { key: "CONFIRMING", label: "Confirming" },
];
export const JOB_OUTCOMES: Record<string, string> = {
  SUCCEEDED: "Succeeded",
  FAILED: "Failed",
  ROLLED_BACK: "Rolled back",
  REJECTED: "Rejected",
  CANCELLED: "Cancelled",
};

/** True once the job has ended: it has no current step any more. */
export function isFinishedJob(status: string): boolean {
  return Object.hasOwn(JOB_OUTCOMES, status);
}
