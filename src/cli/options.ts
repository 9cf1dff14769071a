import { InvalidArgumentError } from 'commander'

/** Commander parser for an integer option within [min, max], with a message naming the option. */
export function integerOption(name: string, min: number, max: number): (value: string) => number {
  return (value: string) => {
    const n = Number(value)
    if (!Number.isInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`--${name} must be an integer from ${min} to ${max}, got "${value}"`)
    }
    return n
  }
}
