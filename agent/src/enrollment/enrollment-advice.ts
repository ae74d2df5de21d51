import type { ErrorCode } from "@fieldgate/shared";

/** What a field engineer or the daemon's log should say to do about an enrollment failure. */
export function enrollmentAdvice(code: ErrorCode, uuid: string): string {
  switch (code) {
    case "ENROLL_WINDOW_CLOSED":
      return `ask an operator to run \`fieldgate-cloud devices reset-token ${uuid}\` (or to add the device), then enroll within the window`;
    case "ENROLL_TOKEN_INVALID":
      return `the token is wrong, used, or for another device; ask an operator for a new one (\`fieldgate-cloud devices reset-token ${uuid}\`)`;
    case "ENROLL_SIGNATURE_INVALID":
      return "the factory key does not match the public key registered for this device; check enrollment.factoryKeyFile and the registry";
    case "ENROLL_STALE":
      return "the device clock is off; fix the time (NTP) and retry";
    case "ENROLL_REPLAYED":
      return "the proof was already used; the next attempt uses a fresh nonce";
    case "ENROLL_KEY_REUSED":
      return "the cloud refused a key this device already had a certificate for; the next attempt generates a new key";
    case "ENROLL_METHOD_DISABLED":
      return "this enrollment method is off for the organization; use a token or a registered factory key";
    case "CLOUD_UNREACHABLE":
      return "check the network, cloud.url and cloud.caFile";
    case "DEVICE_NOT_FOUND":
      return `ask an operator to add the device (\`fieldgate-cloud devices add ${uuid}\`)`;
    default:
      return "see docs/error-codes.md";
  }
}
