/** `currentBuild`: the fields the steps read and write. */
class FakeRun {
    int number = 7
    String result
    String description
    String displayName = '#7'
}
