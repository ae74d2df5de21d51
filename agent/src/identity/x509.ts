// @peculiar/x509 resolves its algorithms through tsyringe, which needs the Reflect metadata API
// loaded first (its README, "Reflect Polyfill Required"). Import x509 only through this module.
import "reflect-metadata";

export * from "@peculiar/x509";
