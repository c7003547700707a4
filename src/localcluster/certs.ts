import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

/** Files of a throw-away PKI for one control plane; generated with the openssl CLI. */
export interface Pki {
  caCert: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  adminCert: string;
  adminKey: string;
  saKey: string;
  saPub: string;
}

const openssl = (args: string[]) => execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"] });

function signedCert(dir: string, name: string, subject: string, ca: { cert: string; key: string }, extensions: string): [string, string] {
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const cert = join(dir, `${name}.crt`);
  const ext = join(dir, `${name}.ext`);
  writeFileSync(ext, extensions);
  openssl(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-subj", subject, "-out", csr]);
  openssl(["x509", "-req", "-in", csr, "-CA", ca.cert, "-CAkey", ca.key, "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", cert]);
  return [cert, key];
}

export function generatePki(dir: string): Pki {
  const caKey = join(dir, "ca.key");
  const caCert = join(dir, "ca.crt");
  openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", caKey, "-subj", "/CN=podnet-test-ca", "-days", "2", "-out", caCert]);
  const ca = { cert: caCert, key: caKey };
  const [serverCert, serverKey] = signedCert(dir, "apiserver", "/CN=kube-apiserver", ca,
    "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n");
  const [adminCert, adminKey] = signedCert(dir, "admin", "/O=system:masters/CN=podnet-admin", ca, "extendedKeyUsage=clientAuth\n");
  const saKey = join(dir, "sa.key");
  const saPub = join(dir, "sa.pub");
  openssl(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", saKey]);
  openssl(["pkey", "-in", saKey, "-pubout", "-out", saPub]);
  return { caCert, caKey, serverCert, serverKey, adminCert, adminKey, saKey, saPub };
}
