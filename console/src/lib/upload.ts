import { ApiError, answerOf, apiPath, csrfHeader, type Query } from "./api";

/**
 * Streams a file to the API with XMLHttpRequest, whose `upload.onprogress` reports the bytes sent
 * (fetch has no upload progress). The answer, and an API refusal, are read as `api()` reads them.
 */
export function uploadFile<T>(
  path: string,
  file: Blob,
  options: {
    query?: Query;
    headers?: Record<string, string>;
    onProgress?: (sent: number, total: number) => void;
    signal?: AbortSignal;
  } = {},
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", apiPath(path, options.query));
    xhr.withCredentials = true;
    const headers: Record<string, string> = {
      accept: "application/json",
      "content-type": "application/octet-stream",
      ...csrfHeader(),
      ...options.headers,
    };
    for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (event) => {
      options.onProgress?.(event.loaded, event.lengthComputable ? event.total : file.size);
    };
    xhr.onload = () => {
      const body = xhr.status === 204 ? null : xhr.responseText;
      const response = new Response(body, { status: xhr.status, statusText: xhr.statusText });
      answerOf<T>(response, path).then(resolve, reject);
    };
    xhr.onerror = () => reject(new ApiError(0, "NETWORK", "the upload did not reach the cloud (network error)"));
    xhr.onabort = () => reject(new ApiError(0, "ABORTED", "the upload was cancelled"));
    options.signal?.addEventListener("abort", () => xhr.abort());
    xhr.send(file);
  });
}

/** Base64 of a text's UTF-8 bytes (for a header that carries JSON). */
export function base64Utf8(text: string): string {
  let binary = "";
  for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
  return btoa(binary);
}
