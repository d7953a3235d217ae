export { type Backend, createEmbeddedBackend, createServerBackend, redactConnectionString } from "./backends.ts";
export { connectionString, type GatewayUser, generatePassword } from "./credentials.ts";
export { createGateway, type Gateway, type RequestLogEntry } from "./handler.ts";
export { listen, type RunningGateway } from "./server.ts";
