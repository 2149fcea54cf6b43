import type { RequestHandler } from '../messages.ts';
import { answerLog, type Layer, type RenderError } from './layer.ts';

export interface RequestLayerOptions {
  handler: RequestHandler;
  render: RenderError;
}

/**
 * The top of the stack: a whole request (block-wise transfer done below) goes to the pipeline,
 * and what it returns (its answer or its refusal, who the request proved to be, the route) comes
 * back down as the answer, the refusal rendered as a small CoAP error.
 */
export function createRequestLayer(options: RequestLayerOptions): Layer {
  const { handler, render } = options;
  return {
    async handle(inbound) {
      const handled = await handler.handle(inbound.request, inbound.source);
      const { principal, provedAddressOnly } = handled;
      if (handled.response === undefined) return { ...render(handled.error, inbound.exchange, handled), provedAddressOnly };
      return { reply: { response: handled.response }, principal, provedAddressOnly, log: answerLog(handled) };
    },
  };
}
