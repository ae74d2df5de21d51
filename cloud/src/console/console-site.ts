import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import fastifyStatic from "@fastify/static";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";

/**
 * Headers on every answer, API included: the console runs only the scripts and styles it was
 * built with (no inline code, no CDN), talks only to this origin, and is never framed.
 */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "content-security-policy": [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join("; "),
  "x-frame-options": "DENY",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
  "permissions-policy": "camera=(), microphone=(), geolocation=()",
};

/** Vite names every file under assets/ by its content hash: they never change, so caches keep them. */
const IMMUTABLE = "public, max-age=31536000, immutable";
/** index.html names the current assets: always revalidated, so a new build is picked up at once. */
const REVALIDATE = "no-cache";

/** Where the built console is: the `@fieldgate/console` workspace's dist/, if it is installed. */
export function defaultConsoleDir(): string | undefined {
  try {
    return path.join(path.dirname(createRequire(import.meta.url).resolve("@fieldgate/console/package.json")), "dist");
  } catch {
    return undefined;
  }
}

/**
 * Serves the console under `/` from its build output, with the security headers on every
 * answer. Paths the API does not own and no file matches get index.html, so a reload or a
 * bookmark of a console page (for example /devices/<uuid>) opens that page.
 */
export async function registerConsoleSite(app: FastifyInstance, dir: string | undefined): Promise<ConsoleSite> {
  app.addHook("onSend", async (_request, reply, payload) => {
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) reply.header(name, value);
    return payload;
  });
  const built = dir !== undefined && fs.existsSync(path.join(dir, "index.html"));
  if (built) {
    await app.register(fastifyStatic, {
      root: dir,
      prefix: "/",
      index: "index.html",
      cacheControl: false,
      // Source maps and dotfiles are not part of what the console serves.
      allowedPath: (pathName) => !pathName.endsWith(".map"),
      setHeaders: (reply, filePath) => {
        const inAssets = path.relative(dir, filePath).startsWith(`assets${path.sep}`);
        reply.header("cache-control", inAssets ? IMMUTABLE : REVALIDATE);
      },
    });
  }
  return {
    /** Answers a GET the API has no route for: the console's page, or how to build it. */
    servePage(request: FastifyRequest, reply: FastifyReply): boolean {
      const pathName = request.url.split("?")[0] ?? "";
      // Only page paths fall back to index.html; a missing file (an old asset, a .map) stays a 404.
      const isFile = pathName.startsWith("/assets/") || /\.[^/]*$/.test(pathName);
      if (request.method !== "GET" || pathName.startsWith("/api/") || isFile) return false;
      if (!built) {
        void reply
          .status(503)
          .type("text/plain; charset=utf-8")
          .header("cache-control", REVALIDATE)
          .send("The fieldgate console is not built: run `npm run build` in the fieldgate repository.\n");
        return true;
      }
      void reply.header("cache-control", REVALIDATE).sendFile("index.html");
      return true;
    },
  };
}

export interface ConsoleSite {
  servePage(request: FastifyRequest, reply: FastifyReply): boolean;
}
