// Finds tests/groovy/tests/*Test.groovy, runs every `test*` method on a fresh instance, prints
// PASS/FAIL per test and the closing line "N passed, N failed"; the exit status is the verdict.
import java.lang.reflect.InvocationTargetException
import java.lang.reflect.Method

File root = new File(args ? args[0] : '.').canonicalFile
System.setProperty('repo.root', root.path)
List<File> files = new File(root, 'tests/groovy/tests').listFiles().findAll { it.name.endsWith('Test.groovy') }.sort()
List<List> tests = files.collectMany { File f ->
    Class testClass = this.class.classLoader.parseClass(f)
    testClass.declaredMethods.findAll { it.name.startsWith('test') }.sort { it.name }.collect { [testClass, it] }
}
int passed = 0
int failed = 0
for (List test in tests) {
    Class testClass = test[0]
    Method method = test[1]
    String name = "${testClass.simpleName}.${method.name}"
    try {
        method.invoke(testClass.newInstance())
        passed++
        println "PASS ${name}"
    } catch (InvocationTargetException e) {
        failed++
        println "FAIL ${name}"
        println e.cause.toString().readLines().collect { '    ' + it }.join('\n')
    }
}
println "${passed} passed, ${failed} failed"
// The runner's exit status is what CI reads.
// groovylint-disable-next-line SystemExit
System.exit(failed ? 1 : 0)
