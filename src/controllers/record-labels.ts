/** A label value holds at most 63 characters; a Node name may have 253. */
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$/;

/**
 * Labels for `kubectl get nodecidrs -l podnet.io/node=…`, each only where the name is a valid label value: a
 * longer Node or pool name would get the create refused (422) on every plan, and the Node no CIDR, for a
 * convenience. `--field-selector spec.nodeName=…` (a selectable field) finds every record either way.
 */
export function recordLabels(node: string, pool: string): Record<string, string> {
  return Object.fromEntries(Object.entries({ "podnet.io/node": node, "podnet.io/pool": pool }).filter(([, v]) => LABEL_VALUE.test(v)));
}
