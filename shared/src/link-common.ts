/**
 * Fields every device link has, whatever its type (issue #6). The type-specific schemas
 * (`link-schemas.ts` for serial, `ble-link-schema.ts` for BLE) spread these into their objects.
 */
import { Type } from "@sinclair/typebox";

export const LINK_ID_PATTERN = "^[A-Za-z0-9_.-]{1,64}$";

export const linkCommonProperties = {
  id: Type.String({ pattern: LINK_ID_PATTERN, description: "unique per gateway (A-Z a-z 0-9 _ . -, up to 64)" }),
  enabled: Type.Optional(Type.Boolean({ description: "default true; false keeps the link configured but stopped" })),
  /** A link down this long raises a health warning (default 30s). */
  downWarnAfter: Type.Optional(Type.String({ minLength: 1, description: "duration, default 30s" })),
  /** A link down this long raises a critical; unset means a down link only ever warns. */
  downCriticalAfter: Type.Optional(Type.String({ minLength: 1, description: "duration; unset: never critical" })),
};
