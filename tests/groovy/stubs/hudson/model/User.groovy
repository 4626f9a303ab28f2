package hudson.model

/** A Jenkins user; the steps only read its id. */
class User {
    String id
}
