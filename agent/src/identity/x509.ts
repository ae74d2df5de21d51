// The polyfill must evaluate before @peculiar/x509 loads tsyringe; ES modules evaluate imports in order.
import "./reflect-metadata.js";

export * from "@peculiar/x509";
