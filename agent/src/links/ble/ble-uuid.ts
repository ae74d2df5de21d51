/** The 128-bit form of a 16-bit SIG UUID is `0000xxxx-0000-1000-8000-00805f9b34fb`. */
const SIG_BASE = /^0000([0-9a-f]{4})00001000800000805f9b34fb$/;

/**
 * noble names UUIDs in lower case without dashes, and SIG ones by their 16 bits (`180f`);
 * configs may write either form, so both sides are compared in this one.
 */
export function normalizeUuid(uuid: string): string {
  const compact = uuid.toLowerCase().replace(/-/g, "");
  return SIG_BASE.exec(compact)?.[1] ?? compact;
}
