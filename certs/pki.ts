export {
  createCa,
  issueCertificate,
  type AltNames,
  type CertificateUsage,
  type CreateCaOptions,
  type IssueCertificateOptions,
  type KeyAndCert,
} from './certificate.ts';
export {
  devPkiPaths,
  makeDevPki,
  type DevPkiName,
  type DevPkiPaths,
  type DevPkiResult,
  type KeyCertPaths,
  type MakeDevPkiOptions,
} from './dev-pki.ts';
