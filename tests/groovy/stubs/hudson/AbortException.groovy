package hudson

/** What the `error` step (and a missing credential) throws: ends the build with a message. */
class AbortException extends IOException {
    AbortException(String message) {
        super(message)
    }
}
