// OSCORE (RFC 8613) for CoAP over UDP: key derivation, the OSCORE option, option classes, the
// plaintext, nonce, AAD and AES-CCM-16-64-128, request and response protection, the replay
// window. It depends on node:crypto, cbor-x and coap-packet only, so that a device (the
// simulator, firmware tests) and the gateway run the same code.
export { MAX_PLAINTEXT_BYTES, TAG_BYTES, openAesCcm, sealAesCcm } from './aead.ts';
export { codeByte, isRequestCode, isResponseCode, type CoapMessage, type CoapOption, type ProtectedMessage } from './coap-message.ts';
export { AES_CCM_16_64_128, aeadAad, externalAad, type RequestBinding } from './external-aad.ts';
export { MAX_ID_BYTES, NONCE_BYTES, aeadNonce } from './nonce.ts';
export { decryptedOptions, optionClass, splitOptions, withOscoreOption, type OptionClass } from './option-classes.ts';
export { OSCORE_ERRORS, OscoreError, type OscoreErrorCode } from './oscore-error.ts';
export { OSCORE_OPTION, readOscoreOption, writeOscoreOption, type OscoreOption } from './oscore-option.ts';
export { MAX_PARTIAL_IV_BYTES, MAX_SEQUENCE_NUMBER, partialIvOf, sequenceNumberOf } from './partial-iv.ts';
export { decodePlaintext, encodePlaintext } from './plaintext.ts';
export { REPLAY_WINDOW_SIZE, emptyWindow, slideWindow, windowAt, type ReplayWindow } from './replay-window.ts';
export { protectRequest, unprotectRequest, type ProtectedRequest, type UnprotectedRequest } from './request-protection.ts';
export { protectResponse, unprotectResponse } from './response-protection.ts';
export {
  KEY_BYTES, deriveContext, derivationInfo, type SecurityContext, type SecurityContextInput,
} from './security-context.ts';
