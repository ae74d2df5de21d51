import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import type { FastifyReply } from "fastify";

/** The console's session: the same session token the CLI gets, but in a cookie scripts cannot read. */
export const SESSION_COOKIE = "fg_session";
/** The header a cookie session must echo on every state-changing request. */
export const CSRF_HEADER = "x-csrf-token";

/**
 * The CSRF token of a session: derived from the session token, which only the browser's
 * HttpOnly cookie holds, so another site can neither read nor forge it, and nothing extra is stored.
 */
export function csrfTokenFor(sessionToken: string): string {
  return createHmac("sha256", sessionToken).update("fieldgate console csrf v1").digest("base64url");
}

/** Compares in constant time whatever the lengths (both sides are hashed first). */
export function csrfMatches(sessionToken: string, presented: string | undefined): boolean {
  if (!presented) return false;
  const digest = (value: string) => createHash("sha256").update(value).digest();
  return timingSafeEqual(digest(csrfTokenFor(sessionToken)), digest(presented));
}

export function setSessionCookie(reply: FastifyReply, token: string, expiresAt: number, now = Date.now()): void {
  void reply.setCookie(SESSION_COOKIE, token, {
    httpOnly: true,
    secure: true,
    sameSite: "strict",
    path: "/api/",
    maxAge: Math.max(0, Math.floor((expiresAt - now) / 1000)),
  });
}

export function clearSessionCookie(reply: FastifyReply): void {
  void reply.clearCookie(SESSION_COOKIE, { httpOnly: true, secure: true, sameSite: "strict", path: "/api/" });
}
