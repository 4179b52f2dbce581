import assert from 'node:assert/strict'
import { ibanValid, luhnValid } from '../../sanitize/index.js'

describe('sanitize checksums', () => {
  it('Luhn accepts valid numbers and rejects any single-digit change', () => {
    for (const valid of ['4111111111111111', '378282246310005', '6011111111111117', '0']) assert.ok(luhnValid(valid), valid)
    const base = '4111111111111111'
    for (let index = 0; index < base.length; index++) {
      const changed = base.slice(0, index) + String((Number(base[index]) + 1) % 10) + base.slice(index + 1)
      assert.equal(luhnValid(changed), false, changed)
    }
    assert.equal(luhnValid('4111-1111'), false)
  })

  it('IBAN mod 97 accepts registry examples and rejects wrong checks, lengths and countries', () => {
    for (const valid of ['DE89370400440532013000', 'GB29NWBK60161331926819', 'FR1420041010050500013M02606', 'NO9386011117947']) {
      assert.ok(ibanValid(valid), valid)
    }
    assert.equal(ibanValid('DE88370400440532013000'), false, 'wrong check digits')
    assert.equal(ibanValid('DE8937040044053201300'), false, 'short for DE')
    assert.equal(ibanValid('ZZ89370400440532013000'), false, 'no such country')
    assert.equal(ibanValid('de89370400440532013000'), false, 'compact upper case only')
  })

  it('IBAN check digits 01 are refused although they alias 98 under mod 97', () => {
    // Check digits 98 and 01 leave the same remainder: take an account whose check is 98, swap in 01.
    // Its last two digits run through 100 consecutive values, so every remainder (and check) occurs.
    const accounts = Array.from({ length: 100 }, (_, last) => `DE98${'3704004405320130'}${String(last).padStart(2, '0')}`)
    const withCheck98 = accounts.find((candidate) => ibanValid(candidate))
    assert.ok(withCheck98 !== undefined)
    assert.equal(ibanValid(withCheck98.replace('DE98', 'DE01')), false)
  })
})
