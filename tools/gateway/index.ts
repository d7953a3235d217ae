export { type Backend, createEmbeddedBackend, createServerBackend, redactConnectionString } from "./backends.ts";
export { createGateway, type Gateway, type RequestLogEntry } from "./handler.ts";
export { listen, type RunningGateway } from "./server.ts";
