/**
 * A failure of the data path the demo shows (pods not reaching each other, a source address that is not the
 * one expected). The control plane's logs say nothing about it, so the demo prints only its own words.
 */
export class DataPathFailure extends Error {}

/**
 * Pod traffic to a node address leaves its node masqueraded: the receiver must see the sending node's address.
 * A pod IP there means the sending node's masquerade rule is missing (its `table inet podnet`, say).
 */
export function masqueradeProblem(seen: string, senderNode: { name: string; ip: string }): string | undefined {
  if (seen === senderNode.ip) return undefined;
  return `the hostPort saw the datagram from ${seen}, not from ${senderNode.name}'s address ${senderNode.ip}: pod traffic to a node address was not masqueraded`;
}
