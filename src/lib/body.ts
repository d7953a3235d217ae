import { ApiError } from "./errors";

/**
 * Reads a request body once, refusing it as soon as it passes `maxBytes`
 * (a lying or missing Content-Length does not get past the cap).
 */
export async function readBodyCapped(request: Request, maxBytes: number): Promise<Uint8Array<ArrayBuffer>> {
  const tooLarge = () => new ApiError("payload_too_large", `The body exceeds the limit of ${maxBytes} bytes.`);
  const declared = Number(request.headers.get("content-length") ?? "0");
  if (declared > maxBytes) throw tooLarge();
  if (!request.body) return new Uint8Array();
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (let read = await reader.read(); !read.done; read = await reader.read()) {
    size += read.value.byteLength;
    if (size > maxBytes) {
      await reader.cancel();
      throw tooLarge();
    }
    chunks.push(read.value);
  }
  return concatBytes(chunks, size);
}

/** The chunks as one array (no copy when there is one). */
export function concatBytes(chunks: Uint8Array[], size: number): Uint8Array<ArrayBuffer> {
  if (chunks.length === 1 && chunks[0]!.buffer instanceof ArrayBuffer) return chunks[0] as Uint8Array<ArrayBuffer>;
  const out = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}

/** A request body as JSON: a 400 for invalid UTF-8 or JSON. */
export function decodeJson(body: Uint8Array): unknown {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(body);
  } catch {
    throw new ApiError("bad_request", "The body is not valid UTF-8.");
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    // SyntaxError says where it broke; a RangeError (nesting beyond the stack) says nothing of the body.
    const where = error instanceof SyntaxError ? error.message : "it is nested too deeply";
    throw new ApiError("bad_request", `The body is not valid JSON: ${where}`);
  }
}
