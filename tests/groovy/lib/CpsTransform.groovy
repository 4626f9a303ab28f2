import org.codehaus.groovy.ast.ClassCodeExpressionTransformer
import org.codehaus.groovy.ast.ClassHelper
import org.codehaus.groovy.ast.ClassNode
import org.codehaus.groovy.ast.MethodNode
import org.codehaus.groovy.ast.Parameter
import org.codehaus.groovy.ast.expr.ArgumentListExpression
import org.codehaus.groovy.ast.expr.BinaryExpression
import org.codehaus.groovy.ast.expr.ClassExpression
import org.codehaus.groovy.ast.expr.ClosureExpression
import org.codehaus.groovy.ast.expr.ConstantExpression
import org.codehaus.groovy.ast.expr.DeclarationExpression
import org.codehaus.groovy.ast.expr.EmptyExpression
import org.codehaus.groovy.ast.expr.Expression
import org.codehaus.groovy.ast.expr.MethodCallExpression
import org.codehaus.groovy.ast.expr.VariableExpression
import org.codehaus.groovy.ast.stmt.BlockStatement
import org.codehaus.groovy.ast.stmt.EmptyStatement
import org.codehaus.groovy.ast.stmt.ExpressionStatement
import org.codehaus.groovy.ast.stmt.ForStatement
import org.codehaus.groovy.ast.stmt.Statement
import org.codehaus.groovy.ast.stmt.TryCatchStatement
import org.codehaus.groovy.classgen.GeneratorContext
import org.codehaus.groovy.control.CompilePhase
import org.codehaus.groovy.control.SourceUnit
import org.codehaus.groovy.control.customizers.CompilationCustomizer
import org.codehaus.groovy.syntax.Types

/**
 * Compiles the library's vars/*.groovy so CpsRecorder sees what the CPS runtime sees: every CPS
 * method and closure pushes a frame, every parameter, local declaration, assignment and for-in
 * variable is recorded in it, and @NonCPS methods mark themselves (steps are refused there).
 * Also validates every declarative `pipeline { }` block (DeclarativeRules).
 */
class CpsTransform extends CompilationCustomizer {
    static final ClassNode RECORDER = ClassHelper.make(CpsRecorder)

    CpsTransform() {
        super(CompilePhase.CONVERSION)
    }

    static Statement recorderCall(String method, List<Expression> args) {
        return new ExpressionStatement(new MethodCallExpression(
            new ClassExpression(RECORDER), method, new ArgumentListExpression(args)))
    }

    /** `enter; try { holds; body } finally { exit }`. */
    static Statement framed(String frame, Parameter[] params, Statement body, boolean nonCps) {
        BlockStatement inner = new BlockStatement()
        if (!nonCps) {
            for (Parameter p in (params ?: [] as Parameter[])) {
                inner.addStatement(recorderCall('hold', [new ConstantExpression(p.name), new VariableExpression(p.name)]))
            }
        }
        inner.addStatement(body ?: new EmptyStatement())
        Statement exit = nonCps ? recorderCall('exitNonCps', []) : recorderCall('exit', [new ConstantExpression(frame)])
        TryCatchStatement guarded = new TryCatchStatement(inner, exit)
        BlockStatement outer = new BlockStatement()
        outer.addStatement(nonCps ? recorderCall('enterNonCps', [new ConstantExpression(frame)])
                                  : recorderCall('enter', [new ConstantExpression(frame)]))
        outer.addStatement(guarded)
        return outer
    }

    @Override
    void call(SourceUnit source, GeneratorContext context, ClassNode classNode) {
        // Only the library's scripts: never the harness classes this class loader may compile.
        if (!classNode.script) {
            return
        }
        new DeclarativeRules(source).check(classNode)
        for (MethodNode method in classNode.methods) {
            // The script body of a vars file holds only @Field declarations; it is no frame.
            if (method.code == null || method.name in ['run', 'main']) {
                continue
            }
            boolean nonCps = method.annotations.any { it.classNode.nameWithoutPackage == 'NonCPS' }
            String frame = "${classNode.name}.${method.name}"
            if (!nonCps) {
                new Holder(source, frame).visitMethod(method)
            }
            method.code = framed(frame, method.parameters, method.code, nonCps)
        }
    }

    /** Records locals of one CPS method, and frames its closures. */
    static class Holder extends ClassCodeExpressionTransformer {
        final SourceUnit sourceUnit
        final String frame

        Holder(SourceUnit sourceUnit, String frame) {
            this.sourceUnit = sourceUnit
            this.frame = frame
        }

        static Expression hold(String name, Expression value) {
            return new MethodCallExpression(new ClassExpression(RECORDER), 'hold',
                new ArgumentListExpression(new ConstantExpression(name), value))
        }

        @Override
        Expression transform(Expression exp) {
            if (exp instanceof DeclarationExpression && exp.leftExpression instanceof VariableExpression &&
                    !(exp.rightExpression instanceof EmptyExpression)) {
                DeclarationExpression d = (DeclarationExpression) exp
                Expression held = hold(d.variableExpression.name, transform(d.rightExpression))
                DeclarationExpression out = new DeclarationExpression(d.leftExpression, d.operation, held)
                out.sourcePosition = d
                out.addAnnotations(d.annotations)
                return out
            }
            if (exp instanceof BinaryExpression && exp.operation.type == Types.ASSIGN &&
                    exp.leftExpression instanceof VariableExpression) {
                // hold('x', x = value): the assignment stays as written, its value is recorded
                BinaryExpression b = (BinaryExpression) exp
                BinaryExpression assign = new BinaryExpression(b.leftExpression, b.operation, transform(b.rightExpression))
                assign.sourcePosition = b
                return hold(((VariableExpression) b.leftExpression).name, assign)
            }
            if (exp instanceof ClosureExpression) {
                ClosureExpression c = (ClosureExpression) exp
                c.code.visit(this)
                Parameter[] params = c.parameters == null ? [] as Parameter[] : c.parameters
                c.code = framed("closure in ${frame} (line ${c.lineNumber})", params, c.code, false)
                return c
            }
            return super.transform(exp)
        }

        @Override
        void visitForLoop(ForStatement loop) {
            super.visitForLoop(loop)
            if (loop.variable != ForStatement.FOR_LOOP_DUMMY) {
                BlockStatement body = new BlockStatement()
                body.addStatement(new ExpressionStatement(hold(loop.variable.name, new VariableExpression(loop.variable.name))))
                body.addStatement(loop.loopBlock)
                loop.loopBlock = body
            }
        }
    }
}
