export { createAuthResource } from './auth-resource.ts';
export { Keystore, type KeyMetadata, type KeyState } from './keystore.ts';
export { createTokenIssuer, ACCESS_TOKEN_TYP, REFRESH_TOKEN_TYP, type TokenIssuer } from './issue-tokens.ts';
export { createTokenVerifier, type TokenVerifier, type VerifiedToken } from './verify-token.ts';
export { createLoginLimiter } from './login-limiter.ts';
export { generateSecret, hashSecret, DEVICE_ID_PATTERN, SCOPE_PATTERN } from './credentials.ts';
