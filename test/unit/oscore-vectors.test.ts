import { generate, parse, type ParsedPacket } from 'coap-packet';
import t from 'tap';
import { optionNumber } from '../../gateway/src/coap/options.ts';
import {
  aeadAad, aeadNonce, decryptedOptions, deriveContext, derivationInfo, encodePlaintext, externalAad, partialIvOf,
  protectRequest, protectResponse, readOscoreOption, splitOptions, unprotectRequest, unprotectResponse,
  type CoapMessage, type CoapOption, type SecurityContextInput,
} from '../../gateway/src/wire/oscore/index.ts';

// Every test vector of RFC 8613 Appendix C, copied from the RFC's text (the published RFC 8613 of
// June 2019), in both directions: what we derive or protect must be the vector's bytes, and what
// we verify from the vector's bytes must be the vector's plaintext. Each intermediate value the
// RFC prints (info, nonce, aad_array, AAD, plaintext, option value, ciphertext) is checked too,
// so that a failure says which step went wrong. Nothing expected here is computed with the code
// under test.

const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ''), 'hex');
const EMPTY = Buffer.alloc(0);

const MASTER_SECRET = hex('0102030405060708090a0b0c0d0e0f10');
const MASTER_SALT = hex('9e7ca92223786340');
const ID_CONTEXT = hex('37cbf3210017a2d3');

interface DerivationVector {
  section: string;
  input: SecurityContextInput;
  info: { senderKey: string; recipientKey: string; commonIv: string };
  senderKey: string;
  recipientKey: string;
  commonIv: string;
  /** With a Partial IV of 0. */
  senderNonce: string;
  recipientNonce: string;
}

const C11: DerivationVector = {
  section: 'C.1.1 (client, Master Salt)',
  input: { masterSecret: MASTER_SECRET, masterSalt: MASTER_SALT, senderId: hex(''), recipientId: hex('01') },
  info: { senderKey: '8540f60a634b657910', recipientKey: '854101f60a634b657910', commonIv: '8540f60a6249560d' },
  senderKey: 'f0910ed7295e6ad4b54fc793154302ff',
  recipientKey: 'ffb14e093c94c9cac9471648b4f98710',
  commonIv: '4622d4dd6d944168eefb54987c',
  senderNonce: '4622d4dd6d944168eefb54987c',
  recipientNonce: '4722d4dd6d944169eefb54987c',
};
const C12: DerivationVector = {
  section: 'C.1.2 (server, Master Salt)',
  input: { masterSecret: MASTER_SECRET, masterSalt: MASTER_SALT, senderId: hex('01'), recipientId: hex('') },
  info: { senderKey: '854101f60a634b657910', recipientKey: '8540f60a634b657910', commonIv: '8540f60a6249560d' },
  senderKey: 'ffb14e093c94c9cac9471648b4f98710',
  recipientKey: 'f0910ed7295e6ad4b54fc793154302ff',
  commonIv: '4622d4dd6d944168eefb54987c',
  senderNonce: '4722d4dd6d944169eefb54987c',
  recipientNonce: '4622d4dd6d944168eefb54987c',
};
const C21: DerivationVector = {
  section: 'C.2.1 (client, no Master Salt)',
  input: { masterSecret: MASTER_SECRET, senderId: hex('00'), recipientId: hex('01') },
  info: { senderKey: '854100f60a634b657910', recipientKey: '854101f60a634b657910', commonIv: '8540f60a6249560d' },
  senderKey: '321b26943253c7ffb6003b0b64d74041',
  recipientKey: 'e57b5635815177cd679ab4bcec9d7dda',
  commonIv: 'be35ae297d2dace910c52e99f9',
  senderNonce: 'bf35ae297d2dace910c52e99f9',
  recipientNonce: 'bf35ae297d2dace810c52e99f9',
};
const C22: DerivationVector = {
  section: 'C.2.2 (server, no Master Salt)',
  input: { masterSecret: MASTER_SECRET, senderId: hex('01'), recipientId: hex('00') },
  info: { senderKey: '854101f60a634b657910', recipientKey: '854100f60a634b657910', commonIv: '8540f60a6249560d' },
  senderKey: 'e57b5635815177cd679ab4bcec9d7dda',
  recipientKey: '321b26943253c7ffb6003b0b64d74041',
  commonIv: 'be35ae297d2dace910c52e99f9',
  senderNonce: 'bf35ae297d2dace810c52e99f9',
  recipientNonce: 'bf35ae297d2dace910c52e99f9',
};
const C31: DerivationVector = {
  section: 'C.3.1 (client, ID Context)',
  input: { masterSecret: MASTER_SECRET, masterSalt: MASTER_SALT, senderId: hex(''), recipientId: hex('01'), idContext: ID_CONTEXT },
  info: {
    senderKey: '85404837cbf3210017a2d30a634b657910',
    recipientKey: '8541014837cbf3210017a2d30a634b657910',
    commonIv: '85404837cbf3210017a2d30a6249560d',
  },
  senderKey: 'af2a1300a5e95788b356336eeecd2b92',
  recipientKey: 'e39a0c7c77b43f03b4b39ab9a268699f',
  commonIv: '2ca58fb85ff1b81c0b7181b85e',
  senderNonce: '2ca58fb85ff1b81c0b7181b85e',
  recipientNonce: '2da58fb85ff1b81d0b7181b85e',
};
const C32: DerivationVector = {
  section: 'C.3.2 (server, ID Context)',
  input: { masterSecret: MASTER_SECRET, masterSalt: MASTER_SALT, senderId: hex('01'), recipientId: hex(''), idContext: ID_CONTEXT },
  info: {
    senderKey: '8541014837cbf3210017a2d30a634b657910',
    recipientKey: '85404837cbf3210017a2d30a634b657910',
    commonIv: '85404837cbf3210017a2d30a6249560d',
  },
  senderKey: 'e39a0c7c77b43f03b4b39ab9a268699f',
  recipientKey: 'af2a1300a5e95788b356336eeecd2b92',
  commonIv: '2ca58fb85ff1b81c0b7181b85e',
  senderNonce: '2da58fb85ff1b81d0b7181b85e',
  recipientNonce: '2ca58fb85ff1b81c0b7181b85e',
};

t.test('C.1-C.3: key derivation with and without Master Salt and ID Context', async (t) => {
  for (const v of [C11, C12, C21, C22, C31, C32]) {
    t.test(v.section, async (t) => {
      const idContext = v.input.idContext === undefined ? undefined : Buffer.from(v.input.idContext);
      t.equal(derivationInfo(Buffer.from(v.input.senderId), idContext, 'Key', 16).toString('hex'), v.info.senderKey, 'info (Sender Key)');
      t.equal(derivationInfo(Buffer.from(v.input.recipientId), idContext, 'Key', 16).toString('hex'), v.info.recipientKey, 'info (Recipient Key)');
      t.equal(derivationInfo(EMPTY, idContext, 'IV', 13).toString('hex'), v.info.commonIv, 'info (Common IV)');
      const ctx = deriveContext(v.input);
      t.equal(ctx.senderKey.toString('hex'), v.senderKey, 'Sender Key');
      t.equal(ctx.recipientKey.toString('hex'), v.recipientKey, 'Recipient Key');
      t.equal(ctx.commonIv.toString('hex'), v.commonIv, 'Common IV');
      t.equal(aeadNonce(ctx.commonIv, ctx.senderId, partialIvOf(0)).toString('hex'), v.senderNonce, 'sender nonce, Partial IV 0');
      t.equal(aeadNonce(ctx.commonIv, ctx.recipientId, partialIvOf(0)).toString('hex'), v.recipientNonce, 'recipient nonce, Partial IV 0');
    });
  }
});

/** A CoAP datagram's request/response layer as the OSCORE functions take it, options by number. */
function messageOf(packet: ParsedPacket): CoapMessage {
  return { code: packet.code, options: optionsOf(packet), payload: packet.payload };
}
function optionsOf(packet: ParsedPacket): CoapOption[] {
  return packet.options.map((o) => ({ number: optionNumber(o.name), value: o.value }));
}
const hexOptions = (options: readonly CoapOption[]) => options.map((o) => `${o.number}=${o.value.toString('hex')}`);

/** The outer datagram: header fields of the unprotected message (the RFC keeps type, Message ID and token), the protected rest. */
function datagramOf(original: ParsedPacket, outerCode: string, outerOptions: readonly CoapOption[], payload: Buffer): Buffer {
  return generate({
    code: outerCode, messageId: original.messageId, token: original.token,
    confirmable: original.confirmable, ack: original.ack, reset: original.reset,
    options: outerOptions.map((o) => ({ name: o.number, value: o.value })), payload,
  });
}

interface RequestVector {
  section: string;
  client: DerivationVector;
  server: DerivationVector;
  unprotected: string;
  sequenceNumber: number;
  partialIv: string;
  kid: string;
  kidContext?: string;
  aadArray: string;
  aad: string;
  plaintext: string;
  nonce: string;
  optionValue: string;
  ciphertext: string;
  protected: string;
}

const REQUESTS: RequestVector[] = [
  {
    section: 'C.4 (request, context of C.1)',
    client: C11, server: C12,
    unprotected: '44015d1f00003974396c6f63616c686f737483747631',
    sequenceNumber: 20, partialIv: '14', kid: '',
    aadArray: '8501810a40411440',
    aad: '8368456e63727970743040488501810a40411440',
    plaintext: '01b3747631',
    nonce: '4622d4dd6d944168eefb549868',
    optionValue: '0914',
    ciphertext: '612f1092f1776f1c1668b3825e',
    protected: '44025d1f00003974396c6f63616c686f7374620914ff612f1092f1776f1c1668b3825e',
  },
  {
    section: 'C.5 (request, context of C.2)',
    client: C21, server: C22,
    unprotected: '440171c30000b932396c6f63616c686f737483747631',
    sequenceNumber: 20, partialIv: '14', kid: '00',
    aadArray: '8501810a4100411440',
    aad: '8368456e63727970743040498501810a4100411440',
    plaintext: '01b3747631',
    nonce: 'bf35ae297d2dace910c52e99ed',
    optionValue: '091400',
    ciphertext: '4ed339a5a379b0b8bc731fffb0',
    protected: '440271c30000b932396c6f63616c686f737463091400ff4ed339a5a379b0b8bc731fffb0',
  },
  {
    section: 'C.6 (request with kid context, context of C.3)',
    client: C31, server: C32,
    unprotected: '44012f8eef9bbf7a396c6f63616c686f737483747631',
    sequenceNumber: 20, partialIv: '14', kid: '', kidContext: '37cbf3210017a2d3',
    aadArray: '8501810a40411440',
    aad: '8368456e63727970743040488501810a40411440',
    plaintext: '01b3747631',
    nonce: '2ca58fb85ff1b81c0b7181b84a',
    optionValue: '19140837cbf3210017a2d3',
    ciphertext: '72cd7273fd331ac45cffbe55c3',
    protected: '44022f8eef9bbf7a396c6f63616c686f73746b19140837cbf3210017a2d3ff72cd7273fd331ac45cffbe55c3',
  },
];

t.test('C.4-C.6: the client protects the request into the vector\'s bytes', async (t) => {
  for (const v of REQUESTS) {
    t.test(v.section, async (t) => {
      const ctx = deriveContext(v.client.input);
      const original = parse(hex(v.unprotected));
      const message = messageOf(original);
      const binding = { kid: hex(v.kid), partialIv: hex(v.partialIv) };
      t.equal(partialIvOf(v.sequenceNumber).toString('hex'), v.partialIv, 'Partial IV');
      t.equal(externalAad(binding).toString('hex'), v.aadArray, 'aad_array');
      t.equal(aeadAad(binding).toString('hex'), v.aad, 'AAD');
      const { inner } = splitOptions(message.options, 'request');
      t.equal(encodePlaintext({ ...message, options: inner }).toString('hex'), v.plaintext, 'plaintext');
      t.equal(aeadNonce(ctx.commonIv, ctx.senderId, hex(v.partialIv)).toString('hex'), v.nonce, 'nonce');

      const protectedRequest = protectRequest(ctx, v.sequenceNumber, message);
      t.equal(protectedRequest.outerCode, '0.02', 'outer code POST');
      t.equal(protectedRequest.payload.toString('hex'), v.ciphertext, 'ciphertext');
      t.same(hexOptions(protectedRequest.outerOptions), [`3=${Buffer.from('localhost').toString('hex')}`, `9=${v.optionValue}`],
        'outer options: Uri-Host and the OSCORE option');
      t.same({ kid: protectedRequest.request.kid.toString('hex'), partialIv: protectedRequest.request.partialIv.toString('hex') },
        { kid: v.kid, partialIv: v.partialIv }, 'the request binding');
      const datagram = datagramOf(original, protectedRequest.outerCode, protectedRequest.outerOptions, protectedRequest.payload);
      t.equal(datagram.toString('hex'), v.protected, 'the protected CoAP request');
    });
  }
});

t.test('C.4-C.6: the server verifies the vector\'s bytes back into the request', async (t) => {
  for (const v of REQUESTS) {
    t.test(v.section, async (t) => {
      const ctx = deriveContext(v.server.input);
      const received = parse(hex(v.protected));
      const outer = optionsOf(received);
      const oscore = outer.find((o) => o.number === 9);
      t.equal(oscore?.value.toString('hex'), v.optionValue, 'the OSCORE option is there');
      const option = readOscoreOption(oscore!.value);
      t.equal(option.partialIv?.toString('hex'), v.partialIv, 'Partial IV');
      t.equal(option.kid?.toString('hex'), v.kid, 'kid');
      t.equal(option.kidContext?.toString('hex'), v.kidContext, 'kid context');

      const { message, sequenceNumber, request } = unprotectRequest(ctx, option, received.payload);
      const original = messageOf(parse(hex(v.unprotected)));
      t.equal(sequenceNumber, v.sequenceNumber, 'sequence number');
      t.same({ kid: request.kid.toString('hex'), partialIv: request.partialIv.toString('hex') }, { kid: v.kid, partialIv: v.partialIv });
      t.equal(message.code, original.code, 'the inner code (GET)');
      t.same(hexOptions(message.options), [`11=${Buffer.from('tv1').toString('hex')}`], 'the inner options: Uri-Path');
      t.equal(message.payload.length, 0, 'no payload');
      t.same(hexOptions(decryptedOptions(outer, message.options)), hexOptions(original.options),
        'the decrypted request: the outer Uri-Host joined with the inner Uri-Path, the OSCORE option gone');
    });
  }
});

interface ResponseVector {
  section: string;
  unprotected: string;
  own?: { sequenceNumber: number };
  aadArray: string;
  aad: string;
  plaintext: string;
  nonce: string;
  optionValue: string;
  ciphertext: string;
  protected: string;
}

// Both answer the request of C.4: request kid h'' (the client's Sender ID), Partial IV 0x14.
const C4_REQUEST = { kid: EMPTY, partialIv: hex('14') };
const RESPONSES: ResponseVector[] = [
  {
    section: 'C.7 (response reusing the request\'s nonce)',
    unprotected: '64455d1f00003974ff48656c6c6f20576f726c6421',
    aadArray: '8501810a40411440',
    aad: '8368456e63727970743040488501810a40411440',
    plaintext: '45ff48656c6c6f20576f726c6421',
    nonce: '4622d4dd6d944168eefb549868',
    optionValue: '',
    ciphertext: 'dbaad1e9a7e7b2a813d3c31524378303cdafae119106',
    protected: '64445d1f0000397490ffdbaad1e9a7e7b2a813d3c31524378303cdafae119106',
  },
  {
    section: 'C.8 (response with a Partial IV of its own, sequence number 0)',
    unprotected: '64455d1f00003974ff48656c6c6f20576f726c6421',
    own: { sequenceNumber: 0 },
    aadArray: '8501810a40411440',
    aad: '8368456e63727970743040488501810a40411440',
    plaintext: '45ff48656c6c6f20576f726c6421',
    nonce: '4722d4dd6d944169eefb54987c',
    optionValue: '0100',
    ciphertext: '4d4c13669384b67354b2b6175ff4b8658c666a6cf88e',
    protected: '64445d1f00003974920100ff4d4c13669384b67354b2b6175ff4b8658c666a6cf88e',
  },
];

t.test('C.7-C.8: the server protects the response into the vector\'s bytes', async (t) => {
  const ctx = deriveContext(C12.input);
  for (const v of RESPONSES) {
    t.test(v.section, async (t) => {
      const original = parse(hex(v.unprotected));
      const message = messageOf(original);
      t.equal(externalAad(C4_REQUEST).toString('hex'), v.aadArray, 'aad_array');
      t.equal(aeadAad(C4_REQUEST).toString('hex'), v.aad, 'AAD');
      t.equal(encodePlaintext(message).toString('hex'), v.plaintext, 'plaintext');
      const nonce = v.own === undefined
        ? aeadNonce(ctx.commonIv, C4_REQUEST.kid, C4_REQUEST.partialIv)
        : aeadNonce(ctx.commonIv, ctx.senderId, partialIvOf(v.own.sequenceNumber));
      t.equal(nonce.toString('hex'), v.nonce, 'nonce');

      const response = protectResponse(ctx, C4_REQUEST, message, v.own);
      t.equal(response.outerCode, '2.04', 'outer code 2.04');
      t.same(hexOptions(response.outerOptions), [`9=${v.optionValue}`], 'the OSCORE option alone');
      t.equal(response.payload.toString('hex'), v.ciphertext, 'ciphertext');
      t.equal(datagramOf(original, response.outerCode, response.outerOptions, response.payload).toString('hex'), v.protected,
        'the protected CoAP response');
    });
  }
});

t.test('C.7-C.8: the client verifies the vector\'s bytes back into the response', async (t) => {
  const ctx = deriveContext(C11.input);
  // The binding as the client's own protection of C.4 gives it.
  const { request } = protectRequest(ctx, 20, messageOf(parse(hex(REQUESTS[0]!.unprotected))));
  for (const v of RESPONSES) {
    t.test(v.section, async (t) => {
      const received = parse(hex(v.protected));
      const oscore = optionsOf(received).find((o) => o.number === 9);
      t.equal(oscore?.value.toString('hex'), v.optionValue, 'the OSCORE option is there');
      const message = unprotectResponse(ctx, request, oscore!.value, received.payload);
      t.equal(message.code, '2.05', 'the inner code');
      t.same(message.options, [], 'no options');
      t.equal(message.payload.toString(), 'Hello World!', 'the payload');
    });
  }
});
