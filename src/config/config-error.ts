/** A config problem a person can fix: names the file, the field, the value and what was expected. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'ConfigError'
  }
}
