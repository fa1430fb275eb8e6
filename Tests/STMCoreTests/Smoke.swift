import Testing
import STM
@Test func smoke() { let v = TVar(1); v.value += 1; #expect(v.value == 2) }
