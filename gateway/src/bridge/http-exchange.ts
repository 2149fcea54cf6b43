import type { Dispatcher } from 'undici';
import { BridgeError } from '../errors.ts';

export interface HttpAnswer {
  statusCode: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/**
 * One request to the backend through undici's dispatcher, the body collected as it arrives.
 * `request()` wraps the same call in a Readable stream and an async iterator per request; the
 * bench profile showed that machinery among the gateway's largest costs. The body is bounded by
 * bytes and by a deadline checked per chunk (bodyTimeout bounds each gap between chunks), so a
 * backend trickling bytes cannot hold a request open, and no timer is set per request.
 */
export function exchange(
  dispatcher: Dispatcher, options: Dispatcher.DispatchOptions, maxBodyBytes: number, deadlineMs: number,
): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    let statusCode = 0;
    let headers: HttpAnswer['headers'] = {};
    const chunks: Buffer[] = [];
    let total = 0;
    dispatcher.dispatch(options, {
      onRequestStart() {},
      onResponseStart(_controller, status, responseHeaders) {
        statusCode = status;
        headers = responseHeaders;
      },
      onResponseData(controller, chunk) {
        total += chunk.length;
        if (total > maxBodyBytes) {
          controller.abort(new BridgeError('GW_ERR_BACKEND_BAD_RESPONSE', `backend answer larger than ${maxBodyBytes} bytes`));
        } else if (performance.now() > deadlineMs) {
          controller.abort(new BridgeError('GW_ERR_BACKEND_TIMEOUT', 'backend answer took longer than the timeout'));
        } else {
          chunks.push(chunk);
        }
      },
      onResponseEnd() {
        resolve({ statusCode, headers, body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks) });
      },
      onResponseError(_controller, err) {
        reject(err);
      },
    });
  });
}
