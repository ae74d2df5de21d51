/** Limits the API enforces, so the console says them before sending (a test compares them). */

/** The shortest password the API takes (CreateUserBody in shared/src/fleet-schemas.ts). */
export const PASSWORD_MIN_LENGTH = 12;

/** The largest CSV a bulk route takes (BULK_CSV_MAX_BYTES in shared/src/bulk-schemas.ts). */
export const BULK_MAX_BYTES = 32 * 1024 * 1024;
