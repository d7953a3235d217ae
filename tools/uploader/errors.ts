/**
 * A problem the caller must fix before anything is sent (usage, configuration, inputs, a payload the
 * contract refuses): the CLI prints the message and exits 1. Messages never contain the secret.
 */
export class UploadError extends Error {
  readonly exitCode = 1;

  constructor(message: string) {
    super(message);
    this.name = "UploadError";
  }
}
